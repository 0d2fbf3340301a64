"""Per-component migrations: applied once, in order, atomically; newer databases refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.store import Migration, MigrationSet, SchemaError, Store, schema_table

_md = sa.MetaData()
_widgets_v1 = sa.Table("widgets", _md, sa.Column("id", sa.Integer, primary_key=True))
_gadgets = sa.Table("gadgets", _md, sa.Column("id", sa.Integer, primary_key=True))


def _create_widgets(conn: Connection) -> None:
    _widgets_v1.create(conn)


def _seed_widgets(conn: Connection) -> None:
    conn.execute(sa.insert(_widgets_v1).values(id=7))


def _create_gadgets(conn: Connection) -> None:
    _gadgets.create(conn)


def _explode(conn: Connection) -> None:
    raise RuntimeError("step failed on purpose")


async def _version(store: Store, component: str) -> int | None:
    if "palyra_schema" not in await _tables(store):
        return None
    async with store.connect() as conn:
        return (
            await conn.execute(
                sa.select(schema_table.c.version).where(schema_table.c.component == component)
            )
        ).scalar()


async def _tables(store: Store) -> set[str]:
    async with store.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_migrations_apply_in_order_and_record_the_version(store: Store) -> None:
    widgets = MigrationSet(
        "widgets", [Migration(1, "create", _create_widgets), Migration(2, "seed", _seed_widgets)]
    )
    await store.migrate(widgets)
    assert await _version(store, "widgets") == 2
    async with store.connect() as conn:
        assert (await conn.execute(sa.select(_widgets_v1.c.id))).scalars().all() == [7]


async def test_reapplying_is_a_no_op_and_a_new_step_applies_alone(store: Store) -> None:
    v1 = MigrationSet("widgets", [Migration(1, "create", _create_widgets)])
    await store.migrate(v1)
    store._migrated.clear()  # a later process opening the same database
    await store.migrate(v1)
    v2 = MigrationSet(
        "widgets", [Migration(1, "create", _create_widgets), Migration(2, "seed", _seed_widgets)]
    )
    await store.migrate(v2)
    assert await _version(store, "widgets") == 2


async def test_components_version_independently(store: Store) -> None:
    await store.migrate(
        MigrationSet("widgets", [Migration(1, "create", _create_widgets)]),
        MigrationSet("gadgets", [Migration(1, "create", _create_gadgets)]),
    )
    assert await _version(store, "widgets") == 1
    assert await _version(store, "gadgets") == 1
    assert {"widgets", "gadgets", "palyra_schema"} <= await _tables(store)


async def test_a_failing_step_rolls_back_the_whole_migration(store: Store) -> None:
    broken = MigrationSet(
        "widgets", [Migration(1, "create", _create_widgets), Migration(2, "explode", _explode)]
    )
    with pytest.raises(SchemaError, match=r"widgets migration 2 \(explode\) failed"):
        await store.migrate(broken)
    assert await _version(store, "widgets") is None
    assert "widgets" not in await _tables(store)


async def test_database_from_a_newer_palyra_is_refused(store: Store) -> None:
    await store.migrate(
        MigrationSet(
            "widgets",
            [Migration(1, "create", _create_widgets), Migration(2, "seed", _seed_widgets)],
        )
    )
    older = Store(store.engine, store.url)
    with pytest.raises(SchemaError) as err:
        await older.migrate(MigrationSet("widgets", [Migration(1, "create", _create_widgets)]))
    message = str(err.value)
    assert "widgets schema version 2" in message
    assert "only knows up to version 1" in message
    assert "Upgrade Palyra" in message


def test_migration_numbers_must_be_contiguous_from_one() -> None:
    with pytest.raises(ValueError, match=r"numbered 1\.\.2 in order, got \[1, 3\]"):
        MigrationSet("w", [Migration(1, "a", _create_widgets), Migration(3, "b", _create_gadgets)])
