"""``palyra db status`` and ``palyra db upgrade`` on a real SQLite file: what they print, their
exit codes, and a database migrated by a newer Palyra refused without a change."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from palyra.cli.main import app
from palyra.daemon.schemas import STORE_SCHEMAS
from palyra.store import SchemaError, open_store, schema_table
from palyra.store.migrations import SchemaTooNew
from palyra.store.schema_status import (
    ComponentStatus,
    pending_problem,
    schema_status,
    upgrade_schema,
)

# ``store_target`` is conftest's StoreTarget (not importable here: tests/daemon has a conftest too).
LATEST = {s.component: s.latest for s in STORE_SCHEMAS}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/palyra.db"


def palyra(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def versions(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        store = await open_store(url, create=False)
        try:
            async with store.connect() as conn:
                rows = await conn.execute(sa.select(schema_table))
                return {r.component: r.version for r in rows}
        finally:
            await store.aclose()

    return asyncio.run(read())


def test_status_of_a_new_database_is_pending_and_creates_nothing(tmp_path: Path, db: str) -> None:
    code, out, err = palyra("db", "status", "--db-url", db)
    assert code == 5
    assert f"database {tmp_path}/palyra.db (not created yet)" in out
    assert "cron                     0       2  2 pending" in out
    assert "run `palyra db upgrade`" in err
    assert not (tmp_path / "palyra.db").exists()


def test_upgrade_migrates_every_component_once(db: str) -> None:
    code, out, _ = palyra("db", "upgrade", "--db-url", db)
    assert code == 0, out
    assert "migrated: vault v0 -> v1," in out and "cron v0 -> v2" in out
    assert versions(db) == LATEST
    code, out, _ = palyra("db", "upgrade", "--db-url", db)
    assert code == 0 and "nothing to do: every component was up to date" in out
    code, out, _ = palyra("db", "status", "--db-url", db)
    assert code == 0
    assert out.count("up to date") == len(STORE_SCHEMAS)


def test_a_partly_migrated_database_is_finished(db: str) -> None:
    async def cron_v1_only() -> None:
        from palyra.cron.store import CRON_SCHEMA
        from palyra.store import MigrationSet

        store = await open_store(db)
        try:
            await store.migrate(MigrationSet("cron", CRON_SCHEMA.migrations[:1]))
        finally:
            await store.aclose()

    asyncio.run(cron_v1_only())
    code, out, _ = palyra("db", "status", "--db-url", db)
    assert code == 5 and "cron                     1       2  1 pending" in out
    code, out, _ = palyra("db", "upgrade", "--db-url", db)
    assert code == 0 and "cron v1 -> v2" in out
    assert versions(db) == LATEST


def test_a_database_from_a_newer_palyra_is_refused_and_left_alone(db: str) -> None:
    assert palyra("db", "upgrade", "--db-url", db)[0] == 0

    async def from_the_future() -> None:
        store = await open_store(db)
        try:
            async with store.begin() as conn:
                await conn.execute(
                    sa.update(schema_table)
                    .where(schema_table.c.component == "cron")
                    .values(version=9)
                )
                await conn.execute(
                    sa.update(schema_table)
                    .where(schema_table.c.component == "vault")
                    .values(version=0)
                )
        finally:
            await store.aclose()

    asyncio.run(from_the_future())
    for command in ("status", "upgrade"):
        code, _, err = palyra("db", command, "--db-url", db)
        assert code == 4, err
        assert "was migrated by a newer Palyra: cron v9 (this Palyra knows up to v2)" in err
        assert "upgrade Palyra on this machine" in err
    # The refused upgrade did not migrate the one component that was behind either.
    assert versions(db)["vault"] == 0


def test_a_database_that_cannot_be_opened_exits_1(tmp_path: Path) -> None:
    code, _, err = palyra("db", "upgrade", "--db-url", "mysql://localhost/palyra")
    assert code == 1
    assert "uses the scheme 'mysql', which Palyra does not support" in err


def test_a_damaged_sqlite_file_exits_3(tmp_path: Path, db: str) -> None:
    (tmp_path / "palyra.db").write_bytes(b"this is not a database" * 300)
    code, _, err = palyra("db", "status", "--db-url", db)
    assert code == 3 and "is damaged" in err


async def test_replicas_upgrading_at_once_apply_each_step_once(
    store_target: Any,
) -> None:
    """Six processes' worth of upgrades on one fresh database at the same moment: none fails,
    every component ends at its latest version (a step run twice would fail: CREATE TABLE)."""
    stores = [await open_store(store_target.url, schema=store_target.schema) for _ in range(6)]
    try:
        results = await asyncio.gather(*(upgrade_schema(s, STORE_SCHEMAS) for s in stores))
        for done in results:
            assert {s.component: s.recorded for s in done.statuses} == LATEST
        # Each component's steps were applied by exactly one of them.
        applied = sorted(step for done in results for step in done.applied)
        assert applied == sorted((c, 0, v) for c, v in LATEST.items())
        assert {
            s.component: s.recorded for s in await schema_status(stores[0], STORE_SCHEMAS)
        } == LATEST
    finally:
        for s in stores:
            await s.aclose()


async def test_upgrade_refuses_a_newer_database_with_schema_too_new(
    store_target: Any,
) -> None:
    store = await open_store(store_target.url, schema=store_target.schema)
    try:
        await upgrade_schema(store, STORE_SCHEMAS)
        async with store.begin() as conn:
            await conn.execute(
                sa.update(schema_table).where(schema_table.c.component == "oauth").values(version=5)
            )
        with pytest.raises(SchemaTooNew) as info:
            await upgrade_schema(store, STORE_SCHEMAS)
        assert isinstance(info.value, SchemaError)
        assert "oauth v5 (this Palyra knows up to v1)" in info.value.envelope.message
    finally:
        await store.aclose()


def test_pending_problem_names_what_is_behind_and_the_command() -> None:
    never = [ComponentStatus("vault", 0, 1), ComponentStatus("cron", 0, 2)]
    assert pending_problem(never, "db") == (
        "the database db has no Palyra tables yet (pending: vault v0 -> v1, cron v0 -> v2); run "
        "`palyra db upgrade` once (with the same config), then start Palyra again"
    )
    partly = [ComponentStatus("vault", 1, 1), ComponentStatus("cron", 1, 2)]
    message = pending_problem(partly, "db")
    assert message is not None and "is not fully migrated (pending: cron v1 -> v2)" in message
    assert pending_problem([ComponentStatus("vault", 1, 1)], "db") is None


def test_every_migration_set_in_palyra_is_one_db_upgrade_applies() -> None:
    """A component whose tables ``palyra db upgrade`` did not know would never be created on
    PostgreSQL, where replicas refuse to migrate by themselves: every MigrationSet defined in
    any palyra module must be in STORE_SCHEMAS."""
    import importlib
    import pkgutil

    import palyra
    from palyra.store import MigrationSet

    found: dict[str, MigrationSet] = {}
    for module_info in pkgutil.walk_packages(palyra.__path__, "palyra."):
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if isinstance(value, MigrationSet):
                found[value.component] = value
    assert len(found) >= 8
    assert {s.component for s in STORE_SCHEMAS} == set(found)
