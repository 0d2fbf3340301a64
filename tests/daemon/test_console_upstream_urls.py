"""Console routes that take a base URL or an OAuth issuer, on a real daemon: a request cannot
switch the upstream guard off, a refused address gets one answer that says nothing about the
target (and nothing is contacted), and bad URLs are 400s naming the field."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from palyra.auth.api_key import validate_api_key
from palyra.config.schema import (
    ModelConfig,
    PalyraConfig,
    ProviderConfig,
    StorageConfig,
    default_config,
)
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind, generate_token
from palyra.daemon.surfaces.console.upstream_urls import REFUSED, as_console_error
from palyra.model import PalyraError
from palyra.providers.upstream.guard import GuardedTransport
from palyra.testing import FakeUpstream

StartDaemon = Any  # the fixture type from tests/daemon/conftest.py
GOOD = "sk-console-urls-7c2e9a1b5d"
C = "/console/v1"
API_KEY_ROUTES = [f"{C}/auth/providers/openai/api-key", f"{C}/auth/providers/anthropic/api-key"]


class Console:
    def __init__(self, http: httpx2.AsyncClient, admin: str) -> None:
        self.http = http
        self.auth = {"authorization": f"Bearer {admin}"}

    async def post(self, path: str, body: dict[str, Any]) -> httpx2.Response:
        return await self.http.post(path, json=body, headers=self.auth)

    async def profiles(self) -> list[Any]:
        listed = await self.http.get(f"{C}/auth/profiles", headers=self.auth)
        data: list[Any] = listed.json()["data"]
        return data


def _local_private_address() -> str | None:
    """A non-loopback address of this machine, if it has one (not every sandbox does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
async def open_console(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """``open_console(providers)`` -> a console on a daemon whose palyra.toml has ``providers``."""
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    clients: list[httpx2.AsyncClient] = []

    def open_(providers: list[ProviderConfig]) -> Console:
        base = default_config()
        mp = base.model_provider.model_copy(
            update={
                "providers": [*base.model_provider.providers, *providers],
                "models": [
                    *base.model_provider.models,
                    *(ModelConfig(id=f"m-{p.id}", provider=p.id) for p in providers),
                ],
            }
        )
        config = PalyraConfig(storage=StorageConfig(url=url), model_provider=mp)
        admin = generate_token(TokenKind.ADMIN)
        auth = Authenticator(
            store_url=url, state_dir=tmp_path, fixed_tokens={admin: TokenKind.ADMIN}
        )
        daemon = start_daemon(AppState.from_config(config), auth=auth)
        clients.append(httpx2.AsyncClient(base_url=daemon.url, timeout=15))
        return Console(clients[-1], admin)

    yield open_
    for client in clients:
        await client.aclose()


@pytest.fixture
async def console(open_console: Any) -> AsyncIterator[Console]:
    yield open_console([])


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_keys=frozenset({GOOD})) as upstream:
        yield upstream


@pytest.mark.parametrize("route", API_KEY_ROUTES)
@pytest.mark.parametrize("value", [True, False])
async def test_allow_private_in_a_request_is_refused_naming_it(
    console: Console, fake: FakeUpstream, route: str, value: bool
) -> None:
    body = {"profile_id": "p", "api_key": GOOD, "base_url": fake.base_url, "allow_private": value}
    response = await console.post(route, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "body.allow_private"
    assert "allow_private_base_url = true" in error["message"]
    assert fake.requests == []
    assert await console.profiles() == []


@pytest.mark.parametrize("route", API_KEY_ROUTES)
async def test_a_refused_address_gets_one_answer_and_nothing_is_contacted(
    console: Console, fake: FakeUpstream, route: str
) -> None:
    """Open port, closed port, metadata address, private, CGNAT, mapped: the same bytes back.
    (0.0.0.0 reaches this host's listeners, so the first is a live port that answers.)"""
    targets = [
        f"http://0.0.0.0:{fake.port}/v1",
        "http://0.0.0.0:1/v1",
        "https://169.254.169.254/latest",
        "https://10.0.0.1/v1",
        "https://100.64.0.1/v1",
        "https://[::ffff:192.168.0.1]/v1",
        "https://[64:ff9b::a9fe:a9fe]/v1",
    ]
    answers = set()
    for target in targets:
        response = await console.post(
            route, {"profile_id": "p", "api_key": GOOD, "base_url": target}
        )
        assert response.status_code == 400, response.text
        assert "location" not in response.headers
        host = httpx2.URL(target).host
        assert host not in response.text and str(fake.port) not in response.text
        answers.add(response.text)
    assert len(answers) == 1, answers
    error = httpx2.Response(400, content=answers.pop()).json()["error"]
    assert error == {
        "message": REFUSED.format(param="base_url"),
        "type": "invalid_request_error",
        "param": "base_url",
        "code": "upstream_address_refused",
    }
    assert fake.requests == []
    assert await console.profiles() == []


async def test_a_private_upstream_the_operator_allowed_is_reachable(open_console: Any) -> None:
    address = _local_private_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve on")
    async with FakeUpstream(host=address, api_keys=frozenset({GOOD})) as lan:
        lan_entry = ProviderConfig(
            id="lan",
            kind="openai_compatible",
            base_url=lan.openai_base_url,
            allow_private_base_url=True,
        )
        console = open_console([lan_entry])
        route = API_KEY_ROUTES[0]
        body = {"profile_id": "lan", "api_key": GOOD, "base_url": lan.openai_base_url}
        created = await console.post(route, body)
        assert created.status_code == 201, created.text
        assert lan.requests[-1].headers["authorization"] == f"Bearer {GOOD}"
        # Another port on the same host is not what the operator allowed.
        other = {**body, "profile_id": "lan2", "base_url": f"http://{address}:1/v1"}
        refused = await console.post(route, other)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == REFUSED.format(param="base_url")
        assert len(lan.requests) == 1


@pytest.mark.parametrize("route", API_KEY_ROUTES)
@pytest.mark.parametrize(
    ("base_url", "fragment"),
    [
        ("http://[::1", "base_url 'http://[::1' is not a valid URL"),
        ("ftp://files.example.com/v1", "is not an absolute http(s) URL (it uses ftp://)"),
        ("https://0251.0376.0251.0376/v1", "not written as four decimal numbers"),
        ("https://user:pw-Zq81x@api.example.com/v1", "credentials belong in the vault"),
        ("http://api.example.com/v1", "uses plain http"),
    ],
)
async def test_a_bad_base_url_is_a_400_naming_the_field(
    console: Console, route: str, base_url: str, fragment: str
) -> None:
    response = await console.post(route, {"profile_id": "p", "api_key": GOOD, "base_url": base_url})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "base_url")
    assert fragment in error["message"]
    assert "pw-Zq81x" not in response.text


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"issuer": "not a url"}, "issuer", "issuer 'not a url' is not an absolute http(s) URL"),
        ({"issuer": "http://[::1"}, "issuer", "is not a valid URL"),
        ({"issuer": "ftp://auth.example.com"}, "issuer", "it uses ftp://"),
        ({"validate_url": "http://[::1"}, "validate_url", "is not a valid URL"),
        ({"issuer": "https://auth.example.com?x=1"}, None, "has a query"),
    ],
)
async def test_a_bad_oauth_issuer_is_a_400_naming_the_field(
    console: Console, body: dict[str, str], param: str | None, fragment: str
) -> None:
    response = await console.post(f"{C}/auth/providers/openai/oauth/start", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("issuer", "https://10.0.0.1"),
        ("issuer", "http://192.168.1.1:8080"),
        ("issuer", "https://[fd00::1]"),
        ("validate_url", "https://169.254.169.254/v1"),
    ],
)
async def test_a_refused_oauth_address_gets_the_one_answer(
    console: Console, field: str, url: str
) -> None:
    response = await console.post(f"{C}/auth/providers/openai/oauth/start", {field: url})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "message": REFUSED.format(param=field),
        "type": "invalid_request_error",
        "param": field,
        "code": "upstream_address_refused",
    }


async def test_a_name_that_resolves_to_a_private_address_gets_the_one_answer() -> None:
    """The key check's guard resolves the name and refuses before connecting; the console then
    answers as for a literal (this machine's resolver has no such name, so one is injected)."""

    async def resolve(host: str, port: int) -> list[str]:
        return ["10.20.30.40"]

    guarded = GuardedTransport(httpx2.AsyncHTTPTransport(), False, resolver=resolve)
    async with httpx2.AsyncClient(transport=guarded) as client:
        with pytest.raises(PalyraError) as caught:
            await validate_api_key(
                "openai", "https://models.internal.example/v1", GOOD, client=client, profile="p"
            )
    answer = as_console_error(caught.value, "base_url").envelope
    assert answer.message == REFUSED.format(param="base_url")
    assert "10.20.30.40" not in answer.message and "internal" not in answer.message
