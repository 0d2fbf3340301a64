"""Three ``palyra serve`` processes sharing Redis and one SQLite store, driven with the openai SDK.

A breaker opened on one replica keeps the others off the target; ``max_concurrency = 2`` admits
two calls at once in total; a token revoked through one is refused by another within a second;
Redis stopped in the middle of a load run fails no request, warns once per replica, and the
replicas share state again when it returns.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from palyra.testing import FakeUpstream
from redis_support import OwnRedis, machine_redis_url
from replica_support import Replica, Replicas, started_replicas

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FAKE_KEY = "sk-fake-replicas-0123456789"
SLOW_MS = 500.0
UNREACHABLE = "is unreachable"


def _provider(pid: str, base_url: str, extra: str = "") -> str:
    return (
        f'[[model_provider.providers]]\nid = "{pid}"\nkind = "openai_compatible"\n'
        f'base_url = "{base_url}"\napi_key = "env:FAKE_KEY"\n{extra}\n'
        f'[[model_provider.models]]\nid = "{pid}"\nprovider = "{pid}"\nmodel = "gpt-4o-mini"\n'
    )


def _config(db: Path, redis_url: str, providers: str, default: str) -> str:
    return (
        'version = 1\n[daemon]\nclient_tokens = ["env:PALYRA_CLIENT_TOKEN"]\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{db}"\nredis_url = "{redis_url}"\n'
        "[model_provider]\nmax_retries = 0\nfailover = false\nrequest_timeout_ms = 20000\n"
        f'default_chat_model = "{default}"\n'
        "[model_provider.breaker]\nconsecutive_failures = 2\ncooldown_ladder_s = [60]\n"
        f"{providers}"
    )


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FakeUpstream]]:
    fakes = {
        "down": FakeUpstream(fail_rate=1.0, fail_status=503),
        "slow": FakeUpstream(latency_ms=SLOW_MS),
        "fast": FakeUpstream(),
    }
    for fake in fakes.values():
        fake.start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, FakeUpstream]
) -> Iterator[tuple[Replicas, list[Replica], dict[str, str]]]:
    """Three replicas on the machine's Redis; provider ids of this run's own (Redis keys are
    named after them, and other runs may share the database)."""
    run = uuid.uuid4().hex[:8]
    ids = {name: f"{name}-{run}" for name in upstreams}
    providers = "".join(
        _provider(
            ids[name],
            fake.openai_base_url,
            "max_concurrency = 2\n" if name == "slow" else "",
        )
        for name, fake in upstreams.items()
    )
    workdir = tmp_path_factory.mktemp("replicas")
    text = _config(workdir / "palyra.db", machine_redis_url(), providers, ids["fast"])
    with started_replicas(workdir, text, env={"FAKE_KEY": FAKE_KEY}) as (group, replicas):
        yield group, replicas, ids


def _ask(replica: Replica, model: str, token: str | None = None) -> str:
    client = replica.client() if token is None else replica.client(token)
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    return reply.choices[0].message.content or ""


def test_a_breaker_opened_on_one_replica_keeps_the_others_off_the_target(
    fleet: tuple[Replicas, list[Replica], dict[str, str]], upstreams: dict[str, FakeUpstream]
) -> None:
    _, replicas, ids = fleet
    down = upstreams["down"]
    down.clear()
    for _ in range(2):  # two upstream 503s seen by replica 0 open the breaker
        with pytest.raises(openai.APIStatusError) as caught:
            _ask(replicas[0], ids["down"])
        assert caught.value.status_code == 503
    assert len(down.requests) == 2
    for replica in replicas[1:]:
        with pytest.raises(openai.APIStatusError) as caught:
            _ask(replica, ids["down"])
        assert "is cooling down after repeated failures" in caught.value.message
    assert len(down.requests) == 2  # neither other replica called the target


def test_max_concurrency_two_admits_two_at_once_across_three_replicas(
    fleet: tuple[Replicas, list[Replica], dict[str, str]], upstreams: dict[str, FakeUpstream]
) -> None:
    _, replicas, ids = fleet
    slow = upstreams["slow"]
    slow.clear()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda i: _ask(replicas[i % 3], ids["slow"]), range(6)))
    assert all(answers)
    arrivals = sorted(r.received_at for r in slow.requests)
    assert len(arrivals) == 6
    # A slot comes free only once an answer (SLOW_MS after its request arrived) is back, so
    # no window shorter than SLOW_MS ever holds more than two arrivals.
    window = SLOW_MS / 1000 * 0.9
    busiest = max(sum(1 for b in arrivals if a <= b < a + window) for a in arrivals)
    assert busiest == 2, arrivals
    assert arrivals[-1] - arrivals[0] >= 2 * window  # three rounds of two, not one of six


def test_a_token_revoked_through_one_replica_is_refused_by_another_within_a_second(
    fleet: tuple[Replicas, list[Replica], dict[str, str]],
) -> None:
    group, replicas, ids = fleet
    created = group.cli("token", "create", "--name", "revoke-me")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    token_id = created.stderr.split("client token ")[1].split()[0]
    for replica in replicas:
        assert _ask(replica, ids["fast"], token)  # now cached by every replica for 30 s
    revoked = group.cli("token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "every running replica was told through Redis" in revoked.stderr
    started = time.monotonic()
    while True:
        try:
            _ask(replicas[2], ids["fast"], token)
        except openai.AuthenticationError:
            break
        assert time.monotonic() - started < 1.0, "still accepted a second after the revoke"
        time.sleep(0.02)
    with pytest.raises(openai.AuthenticationError):
        _ask(replicas[1], ids["fast"], token)


def test_redis_stopped_during_a_load_run_fails_no_request_and_recovers(
    tmp_path: Path, own_redis: OwnRedis
) -> None:
    with FakeUpstream() as fake:
        providers = _provider("main", fake.openai_base_url, "max_concurrency = 64\n")
        text = _config(tmp_path / "palyra.db", own_redis.url, providers, "main")
        with started_replicas(tmp_path / "fleet", text, env={"FAKE_KEY": FAKE_KEY}) as (_, fleet):
            outcomes: list[str] = []
            lock = threading.Lock()
            stop = threading.Event()

            def load(replica: Replica) -> None:
                client = replica.client()
                while not stop.is_set():
                    try:
                        _ask_with(client)
                        result = "ok"
                    except openai.OpenAIError as exc:
                        result = f"{type(exc).__name__}: {exc}"
                    with lock:
                        outcomes.append(result)

            threads = [threading.Thread(target=load, args=(r,)) for r in fleet for _ in "ab"]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1.0)
                own_redis.stop()
                time.sleep(1.5)
                degraded = [r.metrics() for r in fleet]
                own_redis.start()
                time.sleep(2.0)  # the replicas recheck every second
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=30)
            failed = [o for o in outcomes if o != "ok"]
            assert len(outcomes) > 100 and not failed, failed[:5]
            for text_metrics in degraded:
                assert "palyra_shared_state_degraded 1" in text_metrics
            for replica in fleet:
                assert "palyra_shared_state_degraded 0" in replica.metrics()
                assert replica.output().count(UNREACHABLE) == 1, replica.output()[-2000:]
                assert "answers again" in replica.output()


def _ask_with(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="main", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert reply.choices[0].message.content
