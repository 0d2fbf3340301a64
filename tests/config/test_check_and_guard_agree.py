"""The config check and the guard that runs before every connection classify addresses alike:
for any IP literal, ``palyra config check`` refuses the base URL for its address exactly when
the guard would refuse to connect to it."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.config import ConfigError, load_config
from palyra.model import PalyraError
from palyra.providers.upstream.guard import GuardedTransport

_SPECIAL = [
    "0.0.0.0", "10.1.2.3", "100.64.0.1", "100.127.255.255", "127.0.0.1", "169.254.169.254",
    "192.0.2.1", "192.168.1.1", "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
    "8.8.8.8", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:8.8.8.8",
    "64:ff9b::a00:1", "64:ff9b::808:808", "2002:a00:1::", "2002:808:808::", "2001::1",
    "2001:db8::1", "fc00::1", "fe80::1", "fec0::1", "ff02::1", "2606:4700::1111",
]  # fmt: skip
addresses = st.one_of(
    st.sampled_from(_SPECIAL),
    st.ip_addresses().map(str),
)


def _url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}/v1"


def _check_refuses(address: str) -> bool:
    """Whether ``load_config`` (what ``palyra config check`` runs) refuses the base URL."""
    text = (
        '[[model_provider.providers]]\nid = "p"\nkind = "openai_compatible"\n'
        f'base_url = "{_url(address)}"\n'
        '[[model_provider.models]]\nid = "default"\nprovider = "p"\n'
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "palyra.toml")
        path.write_text(text)
        try:
            load_config(path, {})
        except ConfigError as exc:
            assert all("base_url" in str(p) for p in exc.problems), exc
            return True
    return False


async def _guard_refuses(address: str) -> bool:
    sent: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200)

    guarded = GuardedTransport(httpx2.MockTransport(answer), False)
    async with httpx2.AsyncClient(transport=guarded) as client:
        try:
            await client.get(_url(address))
        except PalyraError:
            return not sent
    return False


@settings(max_examples=300, deadline=None)
@given(addresses)
async def test_check_refuses_an_address_exactly_when_the_guard_does(address: str) -> None:
    assert _check_refuses(address) == await _guard_refuses(address), address


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "127.8.9.10"])
async def test_loopback_in_any_form_passes_both(address: str) -> None:
    assert ipaddress.ip_address(address).version in (4, 6)
    assert not _check_refuses(address) and not await _guard_refuses(address)
