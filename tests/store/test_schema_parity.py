"""The same migrations give the same tables on SQLite and PostgreSQL: every table, column
(name, kind of type, nullability), primary key, unique constraint and index compared."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from palyra.daemon.schemas import STORE_SCHEMAS
from palyra.store import Store, open_store
from palyra.store.schema_status import upgrade_schema

pytestmark = pytest.mark.postgres
POSTGRES_URL_ENV = "PALYRA_TEST_POSTGRES_URL"

# What a column's reflected type is, independent of the dialect's spelling of it.
_KINDS = (
    (sa.Boolean, "boolean"),
    (sa.BigInteger, "bigint"),
    (sa.Integer, "integer"),
    (sa.Float, "float"),
    (sa.LargeBinary, "binary"),
    (sa.Text, "text"),
    (sa.String, "string"),
)


def _kind(column_type: Any) -> str:
    for cls, name in _KINDS:
        if isinstance(column_type, cls):
            if name == "string" and getattr(column_type, "length", None) is None:
                return "text"
            return name
    # SQLite reflects REAL / PostgreSQL DOUBLE PRECISION; both are floats.
    if isinstance(column_type, sa.types.Numeric):
        return "float"
    return type(column_type).__name__.lower()


def describe(conn: Connection) -> dict[str, Any]:
    inspector = sa.inspect(conn)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        columns = {
            c["name"]: (_kind(c["type"]), bool(c["nullable"])) for c in inspector.get_columns(table)
        }
        tables[table] = {
            "columns": columns,
            "primary_key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            # PostgreSQL reports a unique constraint as an index too: one set of column lists.
            "unique": sorted(
                {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
                | {
                    tuple(i["column_names"])
                    for i in inspector.get_indexes(table)
                    if i["unique"] and not str(i["name"]).startswith("sqlite_autoindex")
                }
            ),
            "indexes": sorted(
                (str(i["name"]), tuple(i["column_names"]))
                for i in inspector.get_indexes(table)
                if not i["unique"]
            ),
        }
    return tables


async def _migrated_description(store: Store) -> dict[str, Any]:
    await upgrade_schema(store, STORE_SCHEMAS)
    async with store.connect() as conn:
        return await conn.run_sync(describe)


async def test_sqlite_and_postgresql_get_the_same_schema(tmp_path: Path) -> None:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    sqlite = await open_store(f"sqlite+aiosqlite:///{tmp_path}/palyra.db")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(url)
    async with admin.begin() as conn:
        await conn.execute(sa.schema.CreateSchema(schema))
    postgres = await open_store(url, schema=schema)
    try:
        lite = await _migrated_description(sqlite)
        pg = await _migrated_description(postgres)
    finally:
        await sqlite.aclose()
        await postgres.aclose()
        async with admin.begin() as conn:
            await conn.execute(sa.schema.DropSchema(schema, cascade=True))
        await admin.dispose()
    assert set(lite) == set(pg)
    assert len(lite) >= 8  # every component's tables, not an empty comparison
    for table in lite:
        assert lite[table] == pg[table], table
