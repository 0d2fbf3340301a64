"""The upstream guard: base URL policy, address checks at request time, the shared client."""

from __future__ import annotations

import ipaddress
import socket

import httpx2
import pytest
from pytest_httpserver import HTTPServer

from palyra.model import FailureClass, PalyraError
from palyra.providers.upstream.guard import (
    GuardedTransport,
    Resolver,
    blocked_reason,
    check_base_url,
    make_upstream_client,
    system_resolver,
)


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("https://api.openai.com/v1", False),
        ("https://api.anthropic.com", False),
        ("http://localhost:8080/v1", False),
        ("http://models.localhost/v1", False),
        ("http://127.0.0.1:11434/v1", False),
        ("http://[::1]:8000/v1", False),
        ("https://8.8.8.8/v1", False),
        ("https://10.0.0.5/v1", True),
        ("http://192.168.1.20:11434/v1", True),
        ("https://llm.internal.example/v1", False),  # names are checked when connecting
    ],
)
def test_acceptable_base_urls_pass(url: str, allow_private: bool) -> None:
    check_base_url(url, allow_private=allow_private)


@pytest.mark.parametrize(
    ("url", "allow_private", "fragment"),
    [
        ("http://api.openai.com/v1", False, "uses plain http; use https"),
        ("http://llm.internal.example/v1", True, "uses plain http"),
        ("ftp://api.openai.com", False, "not an absolute http(s) URL"),
        ("api.openai.com/v1", False, "not an absolute http(s) URL"),
        ("https:///v1", False, "not an absolute http(s) URL"),
        ("https://api.openai.com/v1#frag", False, "fragment"),
        ("https://api.openai.com:99999/v1", False, "invalid port"),
        ("https://10.0.0.5/v1", False, "10.0.0.5, a private address"),
        ("https://169.254.169.254/latest", False, "a link-local address"),
        ("https://[fd00::1]/v1", False, "a private address"),
        ("https://100.64.1.1/v1", False, "a CGNAT address"),
    ],
)
def test_unacceptable_base_urls_are_config_errors(
    url: str, allow_private: bool, fragment: str
) -> None:
    with pytest.raises(PalyraError) as caught:
        check_base_url(url, allow_private=allow_private, provider_id="openai-main")
    assert caught.value.failure_class is FailureClass.CONFIG
    assert fragment in caught.value.envelope.message
    assert caught.value.envelope.message.startswith("provider 'openai-main': base URL ")


def test_a_private_literal_error_says_how_to_allow_it() -> None:
    with pytest.raises(PalyraError, match="allow_private_base_url = true"):
        check_base_url("https://192.168.0.10/v1", allow_private=False)


def test_credentials_in_a_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(PalyraError) as caught:
        check_base_url("https://admin:hunter2secret@api.example.com/v1", allow_private=False)
    message = caught.value.envelope.message
    assert "credentials" in message
    assert "hunter2secret" not in message and "admin" not in message
    assert "https://api.example.com/v1" in message


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "198.18.0.1",
        "192.0.2.1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "2001::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:a00:1::",
        "2002:7f00:1::",
        "64:ff9b::a00:1",
    ],
)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "104.18.6.192",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "::ffff:127.0.0.1",
    ],
)
def test_public_and_loopback_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


class _Recorder:
    """An inner transport that records what it was asked to send."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(200, json={"ok": True})


def _fixed_resolver(*addresses: str, calls: list[str] | None = None) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return list(addresses)

    return resolve


async def _get(transport: httpx2.AsyncBaseTransport, url: str) -> httpx2.Response:
    async with httpx2.AsyncClient(transport=transport) as client:
        return await client.get(url)


async def test_a_private_ip_literal_is_refused_before_anything_is_sent() -> None:
    recorder = _Recorder()
    guarded = GuardedTransport(httpx2.MockTransport(recorder), False, provider_id="lan")
    with pytest.raises(PalyraError) as caught:
        await _get(guarded, "https://10.1.2.3/v1/models")
    assert caught.value.failure_class is FailureClass.CONFIG
    assert caught.value.envelope.message == (
        "provider 'lan': refusing to connect to upstream 10.1.2.3: a private address; if this "
        "upstream really lives on your network, set allow_private_base_url = true on the "
        "provider in palyra.toml"
    )
    assert recorder.requests == []


@pytest.mark.parametrize(
    "addresses", [("10.0.0.7",), ("93.184.216.34", "10.0.0.7"), ("::ffff:192.168.0.1",)]
)
async def test_a_name_resolving_to_any_private_address_is_refused(
    addresses: tuple[str, ...],
) -> None:
    recorder = _Recorder()
    guarded = GuardedTransport(
        httpx2.MockTransport(recorder), False, resolver=_fixed_resolver(*addresses)
    )
    with pytest.raises(PalyraError, match=r"rebind\.example \(.*\): a private address"):
        await _get(guarded, "https://rebind.example/v1")
    assert recorder.requests == []


async def test_a_resolution_failure_fails_closed_as_a_connection_error() -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    guarded = GuardedTransport(httpx2.MockTransport(_Recorder()), False, resolver=broken)
    with pytest.raises(PalyraError) as caught:
        await _get(guarded, "https://nowhere.example/v1")
    assert caught.value.failure_class is FailureClass.CONNECTION
    assert "could not resolve upstream host 'nowhere.example'" in str(caught.value)


async def test_an_empty_resolution_fails_closed() -> None:
    guarded = GuardedTransport(httpx2.MockTransport(_Recorder()), False, resolver=_fixed_resolver())
    with pytest.raises(PalyraError, match="no addresses"):
        await _get(guarded, "https://empty.example/v1")


async def test_a_public_name_is_pinned_to_the_checked_address_with_its_tls_name() -> None:
    recorder = _Recorder()
    guarded = GuardedTransport(
        httpx2.MockTransport(recorder), False, resolver=_fixed_resolver("93.184.216.34")
    )
    response = await _get(guarded, "https://api.example.com:8443/v1/models?x=1")
    assert response.status_code == 200
    (sent,) = recorder.requests
    assert str(sent.url) == "https://93.184.216.34:8443/v1/models?x=1"
    assert sent.headers["host"] == "api.example.com:8443"
    assert sent.extensions["sni_hostname"] == "api.example.com"
    assert str(response.request.url) == "https://api.example.com:8443/v1/models?x=1"


async def test_resolutions_are_cached_until_the_ttl_passes_on_the_injected_clock() -> None:
    now = [1000.0]
    calls: list[str] = []
    guarded = GuardedTransport(
        httpx2.MockTransport(_Recorder()),
        False,
        resolver=_fixed_resolver("93.184.216.34", calls=calls),
        clock=lambda: now[0],
        cache_ttl_s=30.0,
    )
    async with httpx2.AsyncClient(transport=guarded) as client:
        await client.get("https://api.example.com/a")
        now[0] += 29.0
        await client.get("https://api.example.com/b")
        assert calls == ["api.example.com"]
        now[0] += 2.0
        await client.get("https://api.example.com/c")
    assert calls == ["api.example.com", "api.example.com"]


async def test_allow_private_passes_requests_through_without_resolving() -> None:
    recorder = _Recorder()
    calls: list[str] = []
    guarded = GuardedTransport(
        httpx2.MockTransport(recorder), True, resolver=_fixed_resolver("10.0.0.1", calls=calls)
    )
    await _get(guarded, "https://10.0.0.1/v1")
    await _get(guarded, "https://lan-host.example/v1")
    assert [str(r.url) for r in recorder.requests] == [
        "https://10.0.0.1/v1",
        "https://lan-host.example/v1",
    ]
    assert calls == []


async def test_system_resolver_resolves_localhost_and_literals_for_real() -> None:
    assert {"127.0.0.1", "::1"} & set(await system_resolver("localhost", 80))
    assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]


@pytest.fixture
def upstream(httpserver_ipv4: HTTPServer) -> HTTPServer:
    httpserver_ipv4.expect_request("/v1/models").respond_with_json({"data": []})
    httpserver_ipv4.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": "http://10.0.0.1/"}
    )
    return httpserver_ipv4


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_shared_client_reaches_a_real_loopback_server(
    upstream: HTTPServer, host: str
) -> None:
    async with make_upstream_client(allow_private=False, timeout_s=5.0) as client:
        response = await client.get(f"http://{host}:{upstream.port}/v1/models")
    assert response.status_code == 200
    assert response.json() == {"data": []}


async def test_the_shared_client_does_not_follow_redirects(upstream: HTTPServer) -> None:
    async with make_upstream_client(allow_private=False, timeout_s=5.0) as client:
        response = await client.get(f"http://127.0.0.1:{upstream.port}/moved")
    assert response.status_code == 302


async def test_the_shared_client_ignores_proxy_environment(
    upstream: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with make_upstream_client(allow_private=False, timeout_s=5.0) as client:
        response = await client.get(f"http://127.0.0.1:{upstream.port}/v1/models")
    assert response.status_code == 200


async def test_a_refused_address_falls_through_to_the_next_checked_one(
    upstream: HTTPServer,
) -> None:
    inner = httpx2.AsyncHTTPTransport()
    guarded = GuardedTransport(inner, False, resolver=_fixed_resolver("127.0.0.2", "127.0.0.1"))
    async with httpx2.AsyncClient(transport=guarded, timeout=5.0) as client:
        response = await client.get(f"http://upstream.test:{upstream.port}/v1/models")
        again = await client.get(f"http://upstream.test:{upstream.port}/v1/models")
    assert response.status_code == again.status_code == 200
    assert upstream.log[0][0].headers["Host"] == f"upstream.test:{upstream.port}"
    only_dead = GuardedTransport(inner, False, resolver=_fixed_resolver("127.0.0.2"))
    async with httpx2.AsyncClient(transport=only_dead, timeout=5.0) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"http://upstream.test:{upstream.port}/v1/models")


async def test_a_private_literal_is_refused_by_the_shared_client() -> None:
    async with make_upstream_client(allow_private=False, timeout_s=1.0) as client:
        with pytest.raises(PalyraError, match="allow_private_base_url"):
            await client.get("http://192.168.77.1:9/v1/models")
