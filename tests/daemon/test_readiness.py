"""``GET /readyz``: a real daemon on loopback over a real SQLite file (and PostgreSQL where the
machine runs it) answers 200 only when the store is reachable and migrated and the vault's key
opens the canary secret; otherwise 503 naming the failing check. ``/healthz`` stays 200."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from typer.testing import CliRunner

from palyra.cli.main import app as cli_app
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    StorageConfig,
)
from palyra.daemon import AppState
from palyra.daemon.observe.readiness import CANARY_REF, CheckResult
from palyra.daemon.schemas import STORE_SCHEMAS
from palyra.store import open_store
from palyra.store.schema_status import upgrade_schema
from palyra.testing import FakeUpstream
from palyra.vault import KeyResolver, Vault
from redis_support import OwnRedis

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
StartDaemon = Any
UPSTREAM_KEY = "sk-readiness-upstream-key-0123456789"
CHAT = {"model": "main", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={UPSTREAM_KEY}) as upstream:
        yield upstream


def config_for(url: str, fake: FakeUpstream) -> PalyraConfig:
    return PalyraConfig(
        storage=StorageConfig(url=url),
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="main",
            providers=[
                ProviderConfig(
                    id="vaulted",
                    kind="openai",
                    base_url=fake.openai_base_url,
                    api_key="vault:global/openai",
                )
            ],
            models=[ModelConfig(id="main", provider="vaulted", model="gpt-4o-mini")],
        ),
    )


def migrate(url: str, first_replica: Path) -> None:
    """What ``palyra db upgrade`` and the first replica's ``palyra vault put`` leave behind."""

    async def go() -> None:
        store = await open_store(url)
        try:
            await upgrade_schema(store, STORE_SCHEMAS)
            vault = await Vault.open(store, KeyResolver(first_replica, environ={}))
            await vault.put("global/openai", UPSTREAM_KEY)
        finally:
            await store.aclose()

    asyncio.run(go())


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx2.get(f"{url}/readyz", timeout=15)
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()


def replica_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir(mode=0o700)
    return path


def test_a_replica_without_the_vault_key_says_so_in_readyz_requests_and_doctor(
    start_daemon: StartDaemon, tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    first = replica_dir(tmp_path, "first")
    migrate(url, first)
    key = (first / "vault.key").read_text().strip()
    config = config_for(url, fake)
    second = replica_dir(tmp_path, "second")
    daemon = start_daemon(AppState(config=config, state_dir=second, environ={}))

    assert httpx2.get(f"{daemon.url}/healthz").status_code == 200  # alive, but not ready
    status, body = readyz(daemon.url)
    assert status == 503
    assert body["status"] == "not ready"
    assert body["reason"].startswith("vault: no vault master key found")
    assert "or set PALYRA_VAULT_KEY to its contents" in body["reason"]
    assert [(c["name"], c["ok"]) for c in body["checks"]] == [("store", True), ("vault", False)]
    assert key not in str(body) and UPSTREAM_KEY not in str(body)

    response = httpx2.post(
        f"{daemon.url}/v1/chat/completions", json=CHAT, headers=daemon.headers, timeout=15
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "vault_unavailable"
    assert "could not open the vault: no vault master key found" in error["message"]

    config_file = tmp_path / "palyra.toml"
    config_file.write_text(
        f'version = 1\n[storage]\nurl = "{url}"\n[daemon]\nbind = "127.0.0.1:1"\n'
    )
    monkeypatch.setenv("PALYRA_STATE_DIR", str(second))
    monkeypatch.delenv("PALYRA_VAULT_KEY", raising=False)
    doctor = CliRunner().invoke(cli_app, ["doctor", "--config", str(config_file)])
    assert doctor.exit_code == 1
    vault_line = next(line for line in doctor.stdout.splitlines() if line.startswith("fail  vault"))
    assert "the master key cannot be used" in vault_line
    assert "no vault master key found" in doctor.stdout and "PALYRA_VAULT_KEY" in doctor.stdout
    assert key not in doctor.stdout

    # The same replica given the key is ready and serves.
    served = start_daemon(
        AppState(config=config, state_dir=second, environ={"PALYRA_VAULT_KEY": key})
    )
    status, body = readyz(served.url)
    assert status == 200, body
    assert body["status"] == "ready" and "reason" not in body
    assert body["checks"][1]["detail"].startswith("key ")
    ok = httpx2.post(
        f"{served.url}/v1/chat/completions", json=CHAT, headers=served.headers, timeout=15
    )
    assert ok.status_code == 200, ok.text


def test_a_replica_with_another_key_is_not_ready_and_the_canary_is_shared(
    start_daemon: StartDaemon, tmp_path: Path, fake: FakeUpstream
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    first = replica_dir(tmp_path, "first")
    migrate(url, first)
    key = (first / "vault.key").read_text().strip()
    config = config_for(url, fake)
    good = start_daemon(AppState(config=config, state_dir=first, environ={}))
    assert readyz(good.url)[0] == 200

    async def canary_sealed_once() -> int:
        store = await open_store(url)
        try:
            vault = await Vault.open(store, KeyResolver(first, environ={}))
            return len([m for m in await vault.list("global") if m.ref == CANARY_REF])
        finally:
            await store.aclose()

    assert asyncio.run(canary_sealed_once()) == 1
    other = replica_dir(tmp_path, "other")
    wrong = "A" * 43 + "="
    assert wrong != key
    bad = start_daemon(
        AppState(config=config, state_dir=other, environ={"PALYRA_VAULT_KEY": wrong})
    )
    status, body = readyz(bad.url)
    assert status == 503
    assert body["reason"].startswith("vault: PALYRA_VAULT_KEY is set, but it is not the master key")
    assert wrong not in str(body)
    # A second good replica opens the canary the first one sealed: ready, still one canary.
    again = start_daemon(
        AppState(config=config, state_dir=other, environ={"PALYRA_VAULT_KEY": key})
    )
    assert readyz(again.url)[0] == 200
    assert asyncio.run(canary_sealed_once()) == 1


def test_an_unmigrated_store_is_not_ready_and_says_db_upgrade(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    config = PalyraConfig(storage=StorageConfig(url=url))  # nothing opens the store at start
    daemon = start_daemon(AppState(config=config, state_dir=tmp_path, environ={}))
    status, body = readyz(daemon.url)
    assert status == 503
    assert "has no Palyra tables yet" in body["reason"]
    assert "run `palyra db upgrade`" in body["reason"]
    assert body["checks"][1] == {
        "name": "vault",
        "ok": False,
        "required": True,
        "detail": "not checked: the store is not usable",
    }


def test_an_unreachable_database_is_not_ready_and_the_password_is_hidden(
    start_daemon: StartDaemon, tmp_path: Path, fake: FakeUpstream
) -> None:
    url = "postgresql+asyncpg://palyra:s3cret-pw@127.0.0.1:1/palyra"
    daemon = start_daemon(AppState(config=config_for(url, fake), state_dir=tmp_path, environ={}))
    status, body = readyz(daemon.url)
    assert status == 503
    assert body["reason"].startswith("store: cannot connect to the database")
    assert "s3cret-pw" not in str(body) and "***" in body["reason"]


def test_a_further_probe_is_reported_and_fails_readiness(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    async def redis_down() -> CheckResult:
        return CheckResult("redis", False, "redis://127.0.0.1:1/0 does not answer")

    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    asyncio.run(_upgrade(url))
    state = AppState(
        config=PalyraConfig(storage=StorageConfig(url=url)), state_dir=tmp_path, environ={}
    )
    state.readiness_probes.append(("redis", redis_down))
    daemon = start_daemon(state)
    status, body = readyz(daemon.url)
    assert status == 503
    assert body["reason"] == "redis: redis://127.0.0.1:1/0 does not answer"
    assert [c["name"] for c in body["checks"]] == ["store", "vault", "redis"]
    assert body["checks"][1]["detail"] == "no secrets stored yet"


def test_readyz_needs_no_token_and_is_in_the_openapi_document(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    asyncio.run(_upgrade(url))
    daemon = start_daemon(
        AppState(config=PalyraConfig(storage=StorageConfig(url=url)), state_dir=tmp_path)
    )
    assert readyz(daemon.url)[0] == 200
    document = httpx2.get(f"{daemon.url}/openapi.json", headers=daemon.headers).json()
    responses = document["paths"]["/readyz"]["get"]["responses"]
    assert set(responses) == {"200", "503"}
    schema = responses["503"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["status", "checks"]
    assert os.environ.get("PALYRA_VAULT_KEY") is None


async def _upgrade(url: str) -> None:
    store = await open_store(url)
    try:
        await upgrade_schema(store, STORE_SCHEMAS)
    finally:
        await store.aclose()


@pytest.mark.redis
def test_redis_is_reported_and_its_outage_degrades_without_503(
    start_daemon: StartDaemon, tmp_path: Path, own_redis: OwnRedis
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    asyncio.run(_upgrade(url))
    config = PalyraConfig(storage=StorageConfig(url=url, redis_url=own_redis.url))
    daemon = start_daemon(AppState(config=config, state_dir=tmp_path, environ={}))
    status, body = readyz(daemon.url)
    assert status == 200, body
    redis = body["checks"][2]
    assert redis["name"] == "redis" and redis["ok"] and redis["required"] is False
    assert "answers in" in redis["detail"]
    own_redis.stop()
    status, body = readyz(daemon.url)
    assert status == 200, body  # every replica would be out otherwise
    assert body["status"] == "ready"
    assert body["degraded"][0].startswith("redis: redis://127.0.0.1:")
    assert "per process until it does" in body["degraded"][0]
    own_redis.start()
    # The link's own recheck (every second) takes it back; readiness follows.
    deadline = time.monotonic() + 10
    while "degraded" in (body := readyz(daemon.url)[1]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "degraded" not in body, body
    assert body["checks"][2]["ok"] is True
