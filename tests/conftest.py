"""Shared fixtures. ``store_url`` / ``store``: one real database per test, SQLite and PostgreSQL.

Every test that takes ``store`` runs twice: on a fresh SQLite file in ``tmp_path``, and on
PostgreSQL in a fresh schema (dropped afterwards) when ``PALYRA_TEST_POSTGRES_URL`` is set, e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/palyra_test``; otherwise the PostgreSQL run is
skipped. The store has no migrations applied; call ``await store.migrate(YOUR_SCHEMA)``.

Every test runs with ``PALYRA_STATE_DIR``, ``XDG_STATE_HOME`` and ``XDG_CONFIG_HOME`` pointing at
fresh temporary directories, so no test reads or writes the real ``~/.local/state/palyra``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from palyra.model import errors as model_errors
from palyra.model import known_secrets
from palyra.store import Store, open_store
from redis_support import OwnRedis, fresh_namespace, machine_redis_url

POSTGRES_URL_ENV = "PALYRA_TEST_POSTGRES_URL"
POSTGRES_EXAMPLE = "e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/palyra_test"


@pytest.fixture(autouse=True)
def _isolated_state_dirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep every test's state, tokens and vault key out of the user's real directories."""
    home = tmp_path_factory.mktemp("home")
    for name, sub in (
        ("PALYRA_STATE_DIR", "state/palyra"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CONFIG_HOME", "config"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(home / sub))


@pytest.fixture(autouse=True)
def _own_known_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets registry as in a process of this test's own: it holds what was registered
    before the test (by wider fixtures), and what the test registers goes when it ends, so one
    test's fake key never redacts another test's text."""
    mine = known_secrets.KNOWN_SECRETS.copy()
    monkeypatch.setattr(known_secrets, "KNOWN_SECRETS", mine)
    monkeypatch.setattr(model_errors, "KNOWN_SECRETS", mine)


@dataclass(frozen=True)
class StoreTarget:
    """Where a test database lives: ``open_store(url, schema=schema)`` opens it."""

    backend: str
    url: str
    schema: str | None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreTarget]:
    if request.param == "sqlite":
        yield StoreTarget("sqlite", f"sqlite+aiosqlite:///{tmp_path}/palyra.db", None)
        return
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set ({POSTGRES_EXAMPLE})")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.schema.CreateSchema(schema))
        yield StoreTarget("postgresql", url, schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        await admin.dispose()


@pytest.fixture
async def store(store_target: StoreTarget) -> AsyncIterator[Store]:
    opened = await open_store(store_target.url, schema=store_target.schema)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis (``PALYRA_TEST_REDIS_URL``); the test is skipped without it."""
    return machine_redis_url()


@pytest.fixture
def redis_namespace() -> str:
    """A key prefix of this test's own, so tests sharing one Redis database never collide."""
    return fresh_namespace()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of this test's own on a free port, for tests that stop and restart it."""
    server = OwnRedis(tmp_path / "own-redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database of its own (dropped afterwards), as a URL: for tests whose
    processes open the store from a URL alone (``palyra serve``, ``palyra db``), where a schema
    on ``search_path`` cannot be passed. Skipped without ``PALYRA_TEST_POSTGRES_URL``."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set ({POSTGRES_EXAMPLE})")
    name = f"palyra_t_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
