"""Model discovery over real fakes: cached listings, per-provider errors, unbilled probes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from e2e_support import KEY, KEY_ENV, anthropic_provider, free_port, openai_provider

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.model import FailureClass
from palyra.routing import ManualClock
from palyra.routing.assembly import build_runtime
from palyra.routing.discovery import ModelDiscovery
from palyra.testing import FakeUpstream


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def config(*providers: ProviderConfig, models: list[ModelConfig]) -> PalyraConfig:
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=list(providers), models=models, request_timeout_ms=2000
        )
    )


def listings_asked(fake: FakeUpstream) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/models")


async def test_discovery_lists_every_provider_and_a_dead_one_only_spoils_itself(
    fake: FakeUpstream,
) -> None:
    cfg = config(
        anthropic_provider("claude", fake.anthropic_base_url),
        openai_provider("openai", fake.openai_base_url),
        openai_provider("gone", f"http://127.0.0.1:{free_port()}/v1"),
        ProviderConfig(id="det", kind="deterministic"),
        models=[ModelConfig(id="m", provider="claude")],
    )
    async with build_runtime(cfg) as runtime:
        claude, openai, gone, det = await ModelDiscovery(runtime).discover()
    assert [m.id for m in claude.models] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert "gpt-4o-mini" in [m.id for m in openai.models] and openai.ok
    assert gone.error is not None and gone.error.failure_class is FailureClass.CONNECTION
    assert det.ok and det.models


async def test_listings_are_cached_for_the_ttl_and_shared_by_concurrent_callers(
    fake: FakeUpstream,
) -> None:
    clock = ManualClock()
    cfg = config(
        openai_provider("openai", fake.openai_base_url),
        models=[ModelConfig(id="m", provider="openai", model="gpt-4o-mini")],
    )
    async with build_runtime(cfg) as runtime:
        discovery = ModelDiscovery(runtime, ttl_s=300, clock=clock)
        await asyncio.gather(*(discovery.listing("openai") for _ in range(10)))
        assert listings_asked(fake) == 1
        clock.advance(299)
        await discovery.discover()
        assert listings_asked(fake) == 1
        clock.advance(2)
        await discovery.discover()
        assert listings_asked(fake) == 2
        await discovery.listing("openai", refresh=True)
        assert listings_asked(fake) == 3


async def test_failures_are_cached_for_a_shorter_time(fake: FakeUpstream) -> None:
    clock = ManualClock()
    cfg = config(
        openai_provider("openai", fake.openai_base_url),
        models=[ModelConfig(id="m", provider="openai")],
    )
    fake.settings.fail_rate = 1.0
    async with build_runtime(cfg) as runtime:
        discovery = ModelDiscovery(runtime, ttl_s=300, error_ttl_s=30, clock=clock)
        assert not (await discovery.listing("openai")).ok
        fake.settings.fail_rate = 0.0
        clock.advance(29)
        assert not (await discovery.listing("openai")).ok
        clock.advance(2)
        assert (await discovery.listing("openai")).ok


async def test_probe_asks_each_provider_once_and_says_whether_the_model_is_listed(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALYRA_E2E_BAD", "sk-wrong")
    bad = anthropic_provider("claude", fake.anthropic_base_url).model_copy(
        update={"api_key": "env:PALYRA_E2E_BAD"}
    )
    cfg = config(
        openai_provider("openai", fake.openai_base_url),
        bad,
        models=[
            ModelConfig(id="mini", provider="openai", model="gpt-4o-mini", aliases=["small"]),
            ModelConfig(id="typo", provider="openai", model="gpt-4o-mnii"),
            ModelConfig(id="sonnet", provider="claude", model="claude-sonnet-4-5"),
        ],
    )
    async with build_runtime(cfg) as runtime:
        discovery = ModelDiscovery(runtime)
        mini, typo, sonnet = await discovery.probe()
        (alias,) = await discovery.probe(["small"])
    assert mini.ok and mini.listed is True
    assert typo.ok and typo.listed is False
    assert not sonnet.ok and sonnet.listed is None
    assert sonnet.listing.error is not None
    assert sonnet.listing.error.failure_class is FailureClass.AUTH_INVALID
    assert alias.model.id == "mini"
    openai_lists = [
        r for r in fake.requests if r.path == "/v1/models" and "authorization" in r.headers
    ]
    assert len(openai_lists) == 2  # one per probe call, not one per model
