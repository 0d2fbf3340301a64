"""Revoked-token notices: a token revoked on one replica is refused by another within a second."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palyra.cli.main import app
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind
from palyra.sharedstate import RevocationListener, SharedStateLink, publish_revoked
from redis_support import OwnRedis, free_port

pytestmark = pytest.mark.redis


class Replica:
    """One daemon's token cache, listening for notices on its own link."""

    def __init__(self, url: str, db: str, namespace: str, *, recheck_s: float = 1.0) -> None:
        self.link = SharedStateLink(url, namespace=namespace, recheck_s=recheck_s)
        # A long cache TTL: only the notice can make the refusal come within the test.
        self.auth = Authenticator(store_url=db, cache_ttl_s=3600)
        self.forgotten = 0
        self.listener = RevocationListener(
            self.link, revoked=self.auth.forget_token, missed=self._forget_all
        )

    def _forget_all(self) -> None:
        self.forgotten += 1
        self.auth.forget_all()

    async def start(self) -> Replica:
        await self.auth.start()
        self.listener.start()
        await asyncio.wait_for(self.listener.subscribed.wait(), 5)
        return self

    async def aclose(self) -> None:
        await self.listener.aclose()
        await self.auth.aclose()
        await self.link.aclose()


async def _refused_within(replica: Replica, token: str, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < seconds:
        if await replica.auth.authenticate(token) is None:
            return loop.time() - started
        await asyncio.sleep(0.01)
    raise AssertionError(f"still accepted after {seconds} s")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/palyra.db"


@pytest.fixture
async def two(redis_url: str, db: str, redis_namespace: str) -> AsyncIterator[list[Replica]]:
    replicas = [await Replica(redis_url, db, redis_namespace).start() for _ in range(2)]
    yield replicas
    for replica in replicas:
        await replica.aclose()


async def test_a_token_revoked_on_one_replica_is_refused_by_the_other_within_a_second(
    two: list[Replica],
) -> None:
    first, second = two
    assert first.auth.tokens is not None
    token, record = await first.auth.tokens.create(TokenKind.CLIENT, name="ci")
    other, _ = await first.auth.tokens.create(TokenKind.CLIENT, name="other")
    for replica in two:
        assert await replica.auth.authenticate(token) is not None  # cached for an hour
        assert await replica.auth.authenticate(other) is not None
    await first.auth.tokens.revoke(record.id)
    assert await second.auth.authenticate(token) is not None  # the cache still says yes
    assert await publish_revoked(first.link, record.id)
    assert await _refused_within(second, token, 1.0) < 1.0
    assert await second.auth.authenticate(other) is not None  # only that token was dropped


async def test_a_replica_forgets_its_cache_when_it_subscribes_again_after_an_outage(
    own_redis: OwnRedis, db: str, redis_namespace: str
) -> None:
    first = await Replica(own_redis.url, db, redis_namespace, recheck_s=0.05).start()
    second = await Replica(own_redis.url, db, redis_namespace, recheck_s=0.05).start()
    assert first.auth.tokens is not None
    token, record = await first.auth.tokens.create(TokenKind.CLIENT)
    assert await second.auth.authenticate(token) is not None
    before = second.forgotten
    own_redis.stop()
    await first.auth.tokens.revoke(record.id)
    assert not await publish_revoked(first.link, record.id)  # nobody hears it now
    own_redis.start()
    # Back: the second replica may have missed notices, so it forgets every cached token.
    assert await _refused_within(second, token, 5.0) < 5.0
    assert second.forgotten > before
    await first.aclose()
    await second.aclose()


def _config(tmp_path: Path, redis_url: str, namespace: str | None = None) -> Path:
    path = tmp_path / "palyra.toml"
    path.write_text(f'version = 1\n[storage]\nredis_url = "{redis_url}"\n')
    return path


async def test_palyra_token_revoke_tells_every_replica(
    two: list[Replica], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, db: str
) -> None:
    first, second = two
    assert first.auth.tokens is not None
    token, record = await first.auth.tokens.create(TokenKind.CLIENT)
    assert await second.auth.authenticate(token) is not None
    monkeypatch.setenv("PALYRA_STORAGE__URL", db)
    # The replicas' namespace is a test's own; the CLI publishes in the default one, so the
    # replicas here listen there too.
    for replica in two:
        replica.link.namespace = "palyra"
        await replica.listener.aclose()
        replica.listener.subscribed.clear()
        replica.listener.start()
        await asyncio.wait_for(replica.listener.subscribed.wait(), 5)
    config = _config(tmp_path, redis_url)
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["token", "revoke", record.id, "--config", str(config)]
    )
    assert result.exit_code == 0, result.stderr
    assert f"revoked client token {record.id}" in result.stdout
    assert f"every running replica was told through Redis at {redis_url}" in result.stderr
    assert await _refused_within(second, token, 1.0) < 1.0


def test_palyra_token_revoke_says_when_redis_did_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALYRA_STORAGE__URL", f"sqlite+aiosqlite:///{tmp_path}/palyra.db")
    config = _config(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    runner = CliRunner()
    assert runner.invoke(app, ["token", "create", "--config", str(config)]).exit_code == 0
    [row] = json.loads(
        runner.invoke(app, ["token", "list", "--json", "--config", str(config)]).stdout
    )
    result = runner.invoke(app, ["token", "revoke", row["id"], "--config", str(config)])
    assert result.exit_code == 0
    assert "did not answer: running daemons refuse it within 30 s (their token cache)" in (
        result.stderr
    )
    assert "unreachable" not in result.stderr  # no daemon outage warning from a CLI


def test_palyra_token_revoke_without_redis_names_the_cache_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALYRA_STORAGE__URL", f"sqlite+aiosqlite:///{tmp_path}/palyra.db")
    config = tmp_path / "palyra.toml"
    config.write_text("version = 1\n")
    runner = CliRunner()
    assert runner.invoke(app, ["token", "create", "--config", str(config)]).exit_code == 0
    [row] = json.loads(
        runner.invoke(app, ["token", "list", "--json", "--config", str(config)]).stdout
    )
    result = runner.invoke(app, ["token", "revoke", row["id"], "--config", str(config)])
    assert result.exit_code == 0
    assert "refuse it within 30 s (their token cache; no [storage] redis_url)" in result.stderr
