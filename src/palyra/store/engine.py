"""Open the one database Palyra keeps its state in: SQLite by default, PostgreSQL for replicas."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
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


class StoreError(PalyraError):
    """The database cannot be opened or used; the message names the URL (password hidden)."""

    def __init__(self, message: str) -> None:
        super().__init__(PalyraError.of(FailureClass.CONFIG, message).envelope)


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
        async with self.engine.connect() as conn:
            await conn.execution_options(palyra_write=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A read connection (its implicit transaction is rolled back on exit)."""
        async with self.engine.connect() as conn:
            yield conn

    async def migrate(self, *migration_sets: MigrationSet) -> None:
        """Bring each component's tables to its latest version; cheap when already there."""
        for mset in migration_sets:
            if self._migrated.get(mset.component) == mset.latest:
                continue
            async with self.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(
                        sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY))
                    )
                reached = await conn.run_sync(apply_migrations, mset, self.url)
            self._migrated[mset.component] = reached

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
) -> Store:
    """Open (and for SQLite, create) the database, check it answers, apply ``migrations``.

    ``schema`` selects a PostgreSQL schema (via ``search_path``) so several Palyra instances, or
    parallel test runs, can share one database.
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
        engine = _sqlite_engine(parsed, shown)
    else:
        engine = _postgres_engine(parsed, shown, schema)
    store = Store(engine, shown)
    try:
        async with store.connect() as conn:
            await conn.execute(sa.select(sa.literal(1)))
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
        if "not a database" in reason or "malformed" in reason:
            return (
                f"the SQLite database {parsed.database} is not a valid database (it may be corrupt: "
                f"{reason}); move it aside and restore it from a backup, or point [storage] url "
                "at a new file"
            )
        return f"cannot open the SQLite database {shown}: {reason}"
    return (
        f"cannot connect to the database {shown}: {reason}; check that the server is running and "
        "reachable and that [storage] url in palyra.toml is right"
    )


def _sqlite_engine(parsed: URL, shown: str) -> AsyncEngine:
    database = parsed.database
    assert database  # store_url_problem refused a SQLite URL without a file
    _prepare_sqlite_file(Path(database))
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


def _prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (its directory 0700) before SQLite creates it looser."""
    path = path.expanduser()
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)


def _postgres_engine(parsed: URL, shown: str, schema: str | None) -> AsyncEngine:
    connect_args: dict[str, Any] = {"timeout": POSTGRES_CONNECT_TIMEOUT_S}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise StoreError(
                f"the PostgreSQL schema name {schema!r} for {shown} must match {_SCHEMA_NAME.pattern}"
            )
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
