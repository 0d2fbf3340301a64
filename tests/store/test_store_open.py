"""open_store: URL handling, SQLite file safety, and clear errors for bad databases."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from palyra.store import Store, StoreCorrupt, StoreError, open_store, redact_url


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_default_url_creates_database_in_state_dir_with_private_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(state))
    store = await open_store()
    try:
        assert store.dialect == "sqlite"
        assert store.url == f"sqlite+aiosqlite:///{state}/palyra.db"
    finally:
        await store.aclose()
    assert _mode(state) == 0o700
    assert _mode(state / "palyra.db") == 0o600


async def test_sqlite_parent_directory_is_created_0700_and_loose_file_is_tightened(
    tmp_path: Path,
) -> None:
    db = tmp_path / "new" / "p.db"
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    await store.aclose()
    assert _mode(db.parent) == 0o700
    db.chmod(0o644)
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    await store.aclose()
    assert _mode(db) == 0o600


async def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        async with store.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        await store.aclose()


async def test_begin_rolls_back_everything_when_the_block_raises(store: Store) -> None:
    table = sa.Table("t_rollback", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True))
    async with store.begin() as conn:
        await conn.run_sync(table.create)
    with pytest.raises(RuntimeError):
        async with store.begin() as conn:
            await conn.execute(sa.insert(table).values(n=1))
            raise RuntimeError("boom")
    async with store.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar() == 0


async def test_unknown_url_scheme_is_refused_naming_the_url_without_password() -> None:
    with pytest.raises(StoreError) as err:
        await open_store("mysql+aiomysql://bob:hunter2@db.example/palyra")
    message = str(err.value)
    assert "mysql+aiomysql" in message and "bob:***@db.example" in message
    assert "hunter2" not in message
    assert "postgresql+asyncpg" in message


async def test_unreachable_postgres_is_a_clear_error_with_password_redacted() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+asyncpg://palyra:s3cr3tpw@127.0.0.1:{port}/palyra"
    with pytest.raises(StoreError) as err:
        await open_store(url)
    message = str(err.value)
    assert f"palyra:***@127.0.0.1:{port}/palyra" in message
    assert "cannot connect" in message
    assert "s3cr3tpw" not in message


async def test_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    db.write_bytes(b"this is not sqlite at all" * 400)
    with pytest.raises(StoreCorrupt) as err:
        await open_store(f"sqlite+aiosqlite:///{db}")
    assert f"the SQLite database {db} is damaged (file is not a database)" in str(err.value)
    assert "backup" in str(err.value)
    assert db.read_bytes() == b"this is not sqlite at all" * 400


async def test_in_memory_sqlite_is_refused_because_state_must_persist() -> None:
    with pytest.raises(StoreError, match="does not name a file"):
        await open_store("sqlite+aiosqlite://")


async def test_schema_option_is_refused_for_sqlite(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="only applies to PostgreSQL"):
        await open_store(f"sqlite+aiosqlite:///{tmp_path}/p.db", schema="x")


def test_redact_url_hides_password_only() -> None:
    assert redact_url("postgresql+asyncpg://u:pw@h:5432/d") == "postgresql+asyncpg://u:***@h:5432/d"
    assert redact_url("sqlite+aiosqlite:///a/b.db") == "sqlite+aiosqlite:///a/b.db"
