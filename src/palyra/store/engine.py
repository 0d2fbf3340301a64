"""Open the one database Palyra keeps its state in: SQLite by default, PostgreSQL for replicas."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from palyra.model import FailureClass, PalyraError
from palyra.store.migrations import MigrationSet, apply_migrations

DEFAULT_STORE_URL = "sqlite+aiosqlite:///{state_dir}/palyra.db"
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 10.0
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Arbitrary constant key for pg_advisory_xact_lock, so replicas migrate one at a time.
_MIGRATION_LOCK_KEY = 0x50A1_7A5C
# SQLite's primary result codes for a damaged file and for a file that is not a database.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class StoreError(PalyraError):
    """The database cannot be opened or used; the message names the URL (password hidden)."""

    def __init__(self, message: str) -> None:
        super().__init__(PalyraError.of(FailureClass.CONFIG, message).envelope)


class StoreCorrupt(StoreError):
    """The SQLite file is damaged or empty; it was left as it is. The CLI exits 3 on this."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        reason = " ".join(reason.replace("*** in database main ***", "").split())
        super().__init__(
            f"the SQLite database {path} is damaged ({reason}); Palyra stopped without changing "
            "it. Stop every Palyra process that uses it and move it aside together with its "
            f"-wal and -shm files (mv {path} {path}.damaged), then restore {path} from a "
            "backup. Without a backup, the next Palyra command starts a new, empty store: the "
            "secrets, tokens and auth profiles in the damaged file are not carried over"
        )


class StoreMissing(StoreError):
    """A command that only reads found no database file: nothing is stored yet."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(f"nothing is stored yet: the database {path} does not exist")


def redact_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``, safe for errors and logs."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def expand_url(url: str, state_dir: Path | None = None) -> str:
    """Substitute ``{state_dir}``; the state directory is only created when the URL uses it."""
    if "{state_dir}" not in url:
        return url
    if state_dir is None:
        from palyra.paths import state_dir as default_state_dir

        state_dir = default_state_dir()
    return url.replace("{state_dir}", str(state_dir))


def store_url_problem(url: str) -> str | None:
    """What :func:`open_store` refuses in ``url`` before opening anything (syntax, driver, a
    SQLite URL without a file), or ``None``; ``palyra config check`` asks the same."""
    shown = redact_url(url)
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        return (
            f"the database URL {shown} cannot be parsed ({exc}); use e.g. "
            f"{DEFAULT_STORE_URL} or postgresql+asyncpg://user:password@host:5432/palyra"
        )
    if parsed.drivername not in SUPPORTED_DRIVERS:
        return (
            f"the database URL {shown} uses the scheme {parsed.drivername!r}, which Palyra does not "
            f"support; use one of: {', '.join(SUPPORTED_DRIVERS)}"
        )
    database = parsed.database
    if parsed.drivername.startswith("sqlite") and (
        not database or database == ":memory:" or database.startswith("file:")
    ):
        return (
            f"the SQLite URL {shown} does not name a file; Palyra needs a file path, e.g. "
            f"{DEFAULT_STORE_URL}"
        )
    return None


class Store:
    """An async engine plus the two ways to use it: ``begin()`` to write, ``connect()`` to read."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url  # redacted
        self._migrated: dict[str, int] = {}

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any exception.

        On SQLite it starts with ``BEGIN IMMEDIATE`` so read-modify-write sequences wait for the
        write lock (busy timeout) instead of failing half-way.
        """
        with self._corruption_reported():
            async with self.engine.connect() as conn:
                await conn.execution_options(palyra_write=True)
                async with conn.begin():
                    yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A read connection (its implicit transaction is rolled back on exit)."""
        with self._corruption_reported():
            async with self.engine.connect() as conn:
                yield conn

    @contextlib.contextmanager
    def _corruption_reported(self) -> Iterator[None]:
        """A damaged SQLite page met by any query becomes ``StoreCorrupt``, not a traceback."""
        try:
            yield
        except sa.exc.DatabaseError as exc:
            reason = sqlite_corruption(exc)
            if reason is None or self.dialect != "sqlite":
                raise
            raise StoreCorrupt(self.engine.url.database or self.url, reason) from exc

    async def migrate(self, *migration_sets: MigrationSet) -> list[tuple[str, int, int]]:
        """Bring each component's tables to its latest version; cheap when already there.

        Answers the steps this call applied, as (component, from, to): none for a component
        another process migrated first (it waited for that one's lock).
        """
        applied: list[tuple[str, int, int]] = []
        for mset in migration_sets:
            if self._migrated.get(mset.component) == mset.latest:
                continue
            async with self.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(
                        sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY))
                    )
                found, reached = await conn.run_sync(apply_migrations, mset, self.url)
            self._migrated[mset.component] = reached
            if found != reached:
                applied.append((mset.component, found, reached))
        return applied

    async def aclose(self) -> None:
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"


async def open_store(
    url: str = DEFAULT_STORE_URL,
    *,
    state_dir: Path | None = None,
    schema: str | None = None,
    migrations: tuple[MigrationSet, ...] = (),
    create: bool = True,
) -> Store:
    """Open (and for SQLite, create) the database, check it answers, apply ``migrations``.

    ``schema`` selects a PostgreSQL schema (via ``search_path``) so several Palyra instances, or
    parallel test runs, can share one database. With ``create=False`` a missing SQLite file is
    ``StoreMissing`` (commands that only read must not leave a database behind). A damaged or
    empty SQLite file is ``StoreCorrupt``, found before anything is written to it.
    """
    problem = store_url_problem(url)
    if problem is not None:
        raise StoreError(problem)
    expanded = expand_url(url, state_dir)
    shown = redact_url(expanded)
    parsed = make_url(expanded)
    if parsed.drivername.startswith("sqlite"):
        if schema is not None:
            raise StoreError(f"a schema ({schema!r}) only applies to PostgreSQL, not {shown}")
        engine = _sqlite_engine(parsed, shown, create=create)
    else:
        engine = _postgres_engine(parsed, shown, schema)
    store = Store(engine, shown)
    try:
        async with store.connect() as conn:
            if store.dialect == "sqlite":
                # Reads every page once, so damage anywhere is found before anything is written.
                verdict = (await conn.exec_driver_sql("PRAGMA quick_check(1)")).scalar()
                if verdict != "ok":
                    raise StoreCorrupt(parsed.database or shown, f"quick_check: {verdict}")
            else:
                await conn.execute(sa.select(sa.literal(1)))
    except StoreCorrupt:
        await engine.dispose()
        raise
    except (TimeoutError, sa.exc.SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        raise StoreError(_open_failure(parsed, shown, exc)) from exc
    try:
        await store.migrate(*migrations)
    except BaseException:
        await engine.dispose()
        raise
    return store


def _open_failure(parsed: URL, shown: str, exc: BaseException) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc) else ""
    reason = reason or exc.__class__.__name__
    if parsed.password:
        reason = reason.replace(parsed.password, "***")
    if parsed.drivername.startswith("sqlite"):
        return f"cannot open the SQLite database {shown}: {reason}"
    return (
        f"cannot connect to the database {shown}: {reason}; check that the server is running and "
        "reachable and that [storage] url in palyra.toml is right"
    )


def sqlite_corruption(exc: BaseException) -> str | None:
    """SQLite's own words when ``exc`` says the file is damaged or not a database, else None."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError):
        return None
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return str(orig)
    return None


def _sqlite_engine(parsed: URL, shown: str, *, create: bool) -> AsyncEngine:
    database = parsed.database
    assert database  # store_url_problem refused a SQLite URL without a file
    _prepare_sqlite_file(Path(database), create=create)
    engine = create_async_engine(parsed)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Own the transaction boundaries (see the "begin" hook) and make the file robust.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("palyra_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _prepare_sqlite_file(path: Path, *, create: bool) -> None:
    """Create the database file 0600 (its directory 0700) before SQLite creates it looser.

    A new file is made whole (SQLite's header written, fsynced) under a temporary name and
    linked into place, so an existing empty file is never Palyra's own half-made one: it is a
    truncated database, reported as damaged rather than silently used as a fresh store.
    """
    path = path.expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        if not create:
            raise StoreMissing(path) from None
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        _create_sqlite_file(path)
        return
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise StoreCorrupt(path, "the file is empty (0 bytes), so its contents are gone")
    if stat.S_ISREG(path.lstat().st_mode) and info.st_mode & 0o077:
        path.chmod(0o600)  # a regular file, never through a link to something else


def _create_sqlite_file(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode = WAL")  # writes the header page
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _postgres_engine(parsed: URL, shown: str, schema: str | None) -> AsyncEngine:
    connect_args: dict[str, Any] = {"timeout": POSTGRES_CONNECT_TIMEOUT_S}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise StoreError(
                f"the PostgreSQL schema name {schema!r} for {shown} must match {_SCHEMA_NAME.pattern}"
            )
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
