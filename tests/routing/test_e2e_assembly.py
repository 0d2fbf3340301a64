"""Building providers and the runtime from config: kinds, base URLs, quirks, private upstreams."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from e2e_support import KEY, KEY_ENV, anthropic_provider, ask, openai_provider, two_model_config

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.model import FailureClass, PalyraError
from palyra.providers.anthropic import AnthropicProvider
from palyra.providers.deterministic import DeterministicProvider
from palyra.providers.openai import OpenAIProvider
from palyra.providers.openai_compatible import PRESETS, OpenAICompatibleProvider
from palyra.providers.registry import build_provider
from palyra.providers.upstream.guard import GuardedTransport
from palyra.routing import RoutingError
from palyra.routing.assembly import build_runtime
from palyra.testing import FakeUpstream


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as shared:
        yield shared


def test_every_kind_builds_its_adapter_with_the_public_api_as_default_base(
    client: httpx2.AsyncClient,
) -> None:
    anthropic = build_provider(
        ProviderConfig(id="a", kind="anthropic", anthropic_version="2099-01-01"), client
    )
    openai = build_provider(ProviderConfig(id="o", kind="openai", headers={"x-org": "1"}), client)
    assert isinstance(anthropic, AnthropicProvider) and isinstance(openai, OpenAIProvider)
    assert anthropic.base_url == "https://api.anthropic.com"
    assert anthropic.anthropic_version == "2099-01-01"
    assert openai.base_url == "https://api.openai.com/v1"
    local = build_provider(ProviderConfig(id="d", kind="deterministic"), None)
    assert isinstance(local, DeterministicProvider)


def test_openai_compatible_combines_named_quirks_and_needs_a_base_url(
    client: httpx2.AsyncClient,
) -> None:
    cfg = ProviderConfig(
        id="local", kind="openai_compatible", base_url="http://127.0.0.1:8000/v1", quirks=["vllm"]
    )
    built = build_provider(cfg, client)
    assert isinstance(built, OpenAICompatibleProvider)
    assert built.quirks == PRESETS["vllm"]
    with pytest.raises(PalyraError) as info:
        build_provider(cfg.model_copy(update={"base_url": None}), client)
    assert info.value.failure_class is FailureClass.CONFIG
    assert 'provider "local" (kind openai_compatible) has no base_url' in str(info.value)


@pytest.mark.parametrize(
    ("kind", "quirks", "expected"),
    [
        ("openai_compatible", ["vllm", "no-such-thing"], "unknown quirk 'no-such-thing'"),
        ("openai", ["vllm"], "only apply to kind openai_compatible"),
        ("anthropic", ["max-tokens"], "only apply to kind openai_compatible"),
    ],
)
def test_bad_quirks_are_config_errors_naming_the_provider(
    client: httpx2.AsyncClient, kind: str, quirks: list[str], expected: str
) -> None:
    cfg = ProviderConfig(
        id="p1",
        kind=kind,  # type: ignore[arg-type]
        base_url="http://127.0.0.1:8000/v1",
        quirks=quirks,
    )
    with pytest.raises(PalyraError) as info:
        build_provider(cfg, client)
    assert info.value.failure_class is FailureClass.CONFIG
    assert expected in str(info.value) and "p1" in str(info.value)


def test_model_naming_an_unknown_provider_is_refused_before_anything_is_built() -> None:
    cfg = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=[ProviderConfig(id="det", kind="deterministic")],
            models=[ModelConfig(id="fast", provider="opnai")],
        )
    )
    with pytest.raises(PalyraError) as info:
        build_runtime(cfg)
    assert 'model "fast" names provider "opnai", which does not exist (known: det)' in str(
        info.value
    )


async def test_each_http_provider_gets_its_own_client_and_aclose_closes_them() -> None:
    cfg = two_model_config(
        anthropic_provider("a", "http://127.0.0.1:1"), openai_provider("o", "http://127.0.0.1:2/v1")
    )
    runtime = build_runtime(cfg)
    a, o = runtime.clients["a"], runtime.clients["o"]
    assert a is not o and not a.is_closed
    assert set(runtime.providers) == {"a", "o"}
    await runtime.aclose()
    assert a.is_closed and o.is_closed


def test_private_ip_base_url_is_refused_at_build_unless_allowed() -> None:
    private = anthropic_provider("lan", "http://10.1.2.3:8080")
    with pytest.raises(PalyraError) as info:
        build_runtime(two_model_config(private, None))
    assert info.value.failure_class is FailureClass.CONFIG
    assert "allow_private_base_url = true" in str(info.value)
    allowed = private.model_copy(update={"allow_private_base_url": True})
    assert "lan" in build_runtime(two_model_config(allowed, None)).clients


async def test_hostname_resolving_to_a_private_address_is_refused_at_connect() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.9.8.7"]

    def guarded(cfg: ProviderConfig, timeout_s: float) -> httpx2.AsyncClient:
        inner = httpx2.AsyncHTTPTransport()
        transport = GuardedTransport(inner, cfg.allow_private_base_url, resolver=resolver)
        return httpx2.AsyncClient(transport=transport, timeout=timeout_s)

    cfg = two_model_config(anthropic_provider("sneaky", "https://models.example.test"), None)
    async with build_runtime(cfg, client_factory=guarded) as runtime:
        with pytest.raises(RoutingError) as info:
            await runtime.router.chat(ask())
    assert info.value.failure_class is FailureClass.CONFIG
    assert "refusing to connect to upstream models.example.test (10.9.8.7)" in str(info.value)


def local_private_address() -> str | None:
    """A non-loopback address of this machine, if it has one (not every sandbox does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def lan_fake() -> Iterator[FakeUpstream]:
    address = local_private_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve on")
    with FakeUpstream(host=address, api_keys={KEY}) as fake:
        yield fake


async def test_a_private_upstream_is_reached_once_allowed(lan_fake: FakeUpstream) -> None:
    lan = anthropic_provider("lan", lan_fake.anthropic_base_url, allow_private_base_url=True)
    async with build_runtime(two_model_config(lan, None)) as runtime:
        routed = await runtime.router.chat(ask("over the lan"))
    assert routed.response.content == "You said: over the lan"
