"""A ``task`` routing group through the daemon, with the official SDKs against the fake upstream:
the task from an ``x-palyra-task`` header and from the agent a client token is bound to, the
``x-palyra-route`` header on the OpenAI, Anthropic and Responses surfaces, and failover within
the chosen order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    PriceConfig,
    PricingConfig,
    ProviderConfig,
    RoutingGroupConfig,
    StorageConfig,
)
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore
from palyra.store import open_store
from palyra.testing import FakeUpstream, Fault, FaultKind

StartDaemon = Any
RunningDaemon = Any
KEY_ENV = "PALYRA_SMART_ROUTING_KEY"
KEY = "sk-smart-routing-upstream-key"
ASK = [{"role": "user", "content": "sort these three words"}]
BACKGROUND_ROUTE = (
    "smart task task=background/header: mini (cost low, latency low) > "
    "haiku (cost low, latency standard) > big (cost premium, latency standard)"
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def smart_config(fake: FakeUpstream, storage: StorageConfig | None = None) -> PalyraConfig:
    key = f"env:{KEY_ENV}"
    providers = [
        ProviderConfig(id="oa", kind="openai", base_url=fake.openai_base_url, api_key=key),
        ProviderConfig(id="an", kind="anthropic", base_url=fake.anthropic_base_url, api_key=key),
    ]
    models = [
        ModelConfig(id="big", provider="oa", model="gpt-4.1", cost_tier="premium"),
        ModelConfig(id="haiku", provider="an", model="claude-haiku-4-5", cost_tier="low"),
        ModelConfig(
            id="mini", provider="oa", model="gpt-4o-mini", cost_tier="low", latency_tier="low"
        ),
    ]
    group = RoutingGroupConfig(id="smart", strategy="task", members=["big", "haiku", "mini"])
    mp = ModelProviderRegistryConfig(
        default_chat_model="smart", providers=providers, models=models, routing_groups=[group]
    )
    return PalyraConfig(model_provider=mp, storage=storage or StorageConfig())


@pytest.fixture
def smart(fake: FakeUpstream, start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon(smart_config(fake))


def test_openai_sdk_background_header_goes_to_the_cheap_tier_and_says_why(
    fake: FakeUpstream, smart: RunningDaemon
) -> None:
    client = smart.openai_client()
    raw = client.chat.completions.with_raw_response.create(
        model="smart", messages=ASK, extra_headers={"x-palyra-task": "background"}
    )
    assert raw.parse().choices[0].message.content
    assert fake.requests[-1].body["model"] == "gpt-4o-mini"
    assert "x-palyra-task" not in fake.requests[-1].headers  # never sent on
    assert raw.headers["x-palyra-model"] == "mini"
    assert raw.headers["x-palyra-attempts"] == "oa/gpt-4o-mini:ok"
    assert raw.headers["x-palyra-route"] == BACKGROUND_ROUTE

    raw = client.chat.completions.with_raw_response.create(model="smart", messages=ASK)
    assert fake.requests[-1].body["model"] == "gpt-4.1"  # interactive: the group's order
    assert raw.headers["x-palyra-route"].startswith(
        "smart task task=interactive/group-default: big (position 1, cost premium) > "
    )

    raw = client.chat.completions.with_raw_response.create(model="mini", messages=ASK)
    assert "x-palyra-route" not in raw.headers  # a plain model: no decision to explain


def test_failover_stays_within_the_chosen_order(fake: FakeUpstream, smart: RunningDaemon) -> None:
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=503, model="gpt-4o-mini"))
    raw = smart.openai_client().chat.completions.with_raw_response.create(
        model="smart", messages=ASK, extra_headers={"x-palyra-task": "summary"}
    )
    assert raw.headers["x-palyra-attempts"] == (
        "oa/gpt-4o-mini:upstream_unavailable,an/claude-haiku-4-5:ok"
    )
    assert raw.headers["x-palyra-route"].startswith("smart task task=summary/header: mini ")
    assert [r.body["model"] for r in fake.requests[-2:]] == ["gpt-4o-mini", "claude-haiku-4-5"]


def test_anthropic_sdk_stream_carries_the_route_header(
    fake: FakeUpstream, smart: RunningDaemon
) -> None:
    client = anthropic.Anthropic(base_url=smart.url, api_key=smart.client_token, max_retries=0)
    with client.messages.with_streaming_response.create(
        model="smart",
        max_tokens=64,
        messages=[{"role": "user", "content": "label this: spam or not"}],
        stream=True,
        extra_headers={"x-palyra-task": "classification"},
    ) as response:
        text = "".join(response.iter_text())
        headers = response.headers
    assert "message_stop" in text
    assert fake.requests[-1].body["model"] == "gpt-4o-mini"  # latency low comes first
    assert headers["x-palyra-route"].startswith(
        "smart task task=classification/header: mini (cost low, latency low) > "
    )
    assert headers["x-palyra-attempts"] == "oa/gpt-4o-mini:ok"


def test_responses_surface_carries_the_route_header(
    fake: FakeUpstream, smart: RunningDaemon
) -> None:
    raw = smart.openai_client().responses.with_raw_response.create(
        model="smart",
        input="pull the dates out of this",
        extra_headers={"x-palyra-task": "extraction"},
        store=False,
    )
    assert raw.parse().output_text
    assert fake.requests[-1].body["model"] == "gpt-4o-mini"
    assert raw.headers["x-palyra-route"].startswith("smart task task=extraction/header: mini ")


def test_an_unknown_task_header_is_a_400_in_each_apis_shape(smart: RunningDaemon) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        smart.openai_client().chat.completions.create(
            model="smart", messages=ASK, extra_headers={"x-palyra-task": "bulk"}
        )
    assert caught.value.body["param"] == "x-palyra-task"  # type: ignore[index]
    assert caught.value.body["message"].startswith(  # type: ignore[index]
        'x-palyra-task: unknown task class "bulk" (known: interactive, background'
    )
    client = anthropic.Anthropic(base_url=smart.url, api_key=smart.client_token, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model="smart",
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-palyra-task": "bulk"},
        )
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def _bound_token(tmp_path: Path, url: str) -> str:
    store = await open_store(url, state_dir=tmp_path, migrations=(TOKENS_SCHEMA,))
    try:
        token, _ = await TokenStore(store).create(
            TokenKind.CLIENT, name="digest", agent_id="digest"
        )
        return token
    finally:
        await store.aclose()


def test_a_token_bound_to_an_agent_routes_by_the_agents_task(
    fake: FakeUpstream, start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    (tmp_path / "agents.toml").write_text(
        'version = 1\n[[agents]]\nid = "digest"\nmodel = "smart"\ntask = "summary"\n'
    )
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    token = asyncio.run(_bound_token(tmp_path, url))
    state = AppState.from_config(smart_config(fake, StorageConfig(url=url)))
    daemon = start_daemon(state, auth=Authenticator(store_url=url, state_dir=tmp_path))
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=token, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="smart", messages=ASK)
    assert fake.requests[-1].body["model"] == "gpt-4o-mini"
    assert raw.headers["x-palyra-route"].startswith("smart task task=summary/agent: mini ")
    # The header still wins over the agent's task.
    raw = client.chat.completions.with_raw_response.create(
        model="smart", messages=ASK, extra_headers={"x-palyra-task": "interactive"}
    )
    assert fake.requests[-1].body["model"] == "gpt-4.1"


def cheapest_config(fake: FakeUpstream) -> PalyraConfig:
    """gpt-4o-mini and gpt-4.1 priced by the shipped table, claude-haiku-4-5 by palyra.toml,
    and a local model with no price at all."""
    base = smart_config(fake)
    mp = base.model_provider
    local = ProviderConfig(
        id="local",
        kind="openai_compatible",
        base_url=fake.openai_base_url,
        api_key=f"env:{KEY_ENV}",
        allow_private_base_url=True,
    )
    group = RoutingGroupConfig(
        id="thrifty", strategy="cheapest", members=["llama", "big", "mini", "haiku"]
    )
    haiku_price = PriceConfig(
        kind="anthropic",
        model="claude-haiku-4-5",
        effective_from=date(2025, 1, 1),
        input=0.1,
        output=0.2,
    )
    return base.model_copy(
        update={
            "model_provider": mp.model_copy(
                update={
                    "providers": [*mp.providers, local],
                    "models": [
                        *mp.models,
                        ModelConfig(id="llama", provider="local", model="gpt-4o"),
                    ],
                    "routing_groups": [*mp.routing_groups, group],
                }
            ),
            "pricing": PricingConfig(models=[haiku_price]),
        }
    )


def test_cheapest_orders_by_the_price_table_and_sorts_an_unknown_price_last(
    fake: FakeUpstream, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon(cheapest_config(fake))
    client = anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="thrifty", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().content
    assert fake.requests[-1].body["model"] == "claude-haiku-4-5"
    assert raw.headers["x-palyra-route"] == (
        "thrifty cheapest: haiku ($0.2 per 1M in + 0.5M out, palyra.toml) > "
        "mini ($0.45 per 1M in + 0.5M out) > big ($6 per 1M in + 0.5M out) > "
        "llama (price unknown (sorted last))"
    )
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=500, model="claude-haiku-4-5"))
    raw2 = daemon.openai_client().chat.completions.with_raw_response.create(
        model="thrifty", messages=ASK
    )
    assert raw2.headers["x-palyra-attempts"] == (
        "an/claude-haiku-4-5:upstream_unavailable,oa/gpt-4o-mini:ok"
    )


def test_groups_are_listed_as_models_for_both_sdks(smart: RunningDaemon) -> None:
    client = smart.openai_client()
    assert [m.id for m in client.models.list()] == ["big", "haiku", "mini", "smart"]
    assert client.models.retrieve("smart").id == "smart"
    claude = anthropic.Anthropic(base_url=smart.url, api_key=smart.client_token, max_retries=0)
    assert claude.models.retrieve("smart").id == "smart"
