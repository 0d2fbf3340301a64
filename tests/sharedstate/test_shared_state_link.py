"""The Redis link: lazy connection, one warning per outage, the gauge, recovery by itself."""

from __future__ import annotations

import asyncio
import logging

import pytest

from palyra.daemon.observe.metrics import Metrics
from palyra.model import PalyraError
from palyra.sharedstate import SharedStateLink, shown_url
from redis_support import OwnRedis

pytestmark = pytest.mark.redis


def test_an_empty_redis_url_means_per_process_state() -> None:
    assert SharedStateLink.from_url("") is None
    assert SharedStateLink.from_url("   ") is None


def test_a_bad_redis_url_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(PalyraError) as caught:
        SharedStateLink("http://cache:6379")
    message = caught.value.envelope.message
    assert message.startswith("[storage] redis_url has http://")
    assert "redis://127.0.0.1:6379/0" in message


def test_the_shown_url_never_carries_the_password() -> None:
    assert shown_url("redis://app:s3cret-pw@cache:6380/2") == "redis://app:***@cache:6380/2"
    assert shown_url("redis://127.0.0.1:6379/15") == "redis://127.0.0.1:6379/15"


async def test_nothing_connects_before_the_first_call(redis_url: str) -> None:
    link = SharedStateLink(redis_url)
    assert link._client is None
    client = link.client()
    assert client is not None
    assert await client.ping() is True
    assert await link.ping() > 0
    await link.aclose()


async def _fail_like_a_caller(link: SharedStateLink) -> bool:
    """What every caller does: try Redis, report a failure; True when Redis answered."""
    client = link.client()
    if client is None:
        return False
    try:
        await client.set(link.key("probe"), "1")
    except link.errors as exc:
        link.failed(exc)
        return False
    return True


async def test_an_outage_warns_once_shows_on_the_gauge_and_ends_by_itself(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    link = SharedStateLink(own_redis.url, recheck_s=0.05)
    metrics = Metrics()
    metrics.set_shared_state_source(lambda: link.degraded)
    assert await _fail_like_a_caller(link)
    assert "palyra_shared_state_degraded 0" in metrics.render()

    own_redis.stop()
    with caplog.at_level(logging.INFO, logger="palyra.sharedstate"):
        answered = await asyncio.gather(*(_fail_like_a_caller(link) for _ in range(50)))
        assert not any(answered)
        assert link.degraded and link.client() is None
        assert "palyra_shared_state_degraded 1" in metrics.render()
        await asyncio.sleep(0.3)  # rechecks fail meanwhile: still one warning
        own_redis.start()
        for _ in range(100):
            if not link.degraded:
                break
            await asyncio.sleep(0.02)
    assert not link.degraded
    assert await _fail_like_a_caller(link)
    assert "palyra_shared_state_degraded 0" in metrics.render()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"Redis at {own_redis.url} is unreachable" in warnings[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert link.outages == 1
    await link.aclose()


async def test_recovery_callbacks_run_when_redis_returns(own_redis: OwnRedis) -> None:
    link = SharedStateLink(own_redis.url, recheck_s=0.05)
    returned: list[int] = []
    link.on_return(lambda: returned.append(1))
    own_redis.stop()
    assert not await _fail_like_a_caller(link)
    own_redis.start()
    for _ in range(100):
        if returned:
            break
        await asyncio.sleep(0.02)
    assert returned == [1]
    await link.aclose()


def test_without_redis_url_the_gauge_has_no_sample() -> None:
    text = Metrics().render()
    assert "# TYPE palyra_shared_state_degraded gauge" in text
    assert "\npalyra_shared_state_degraded " not in text
