"""The console's pure rules: loopback-only redirect URIs, proxy detection, sessions, CSP."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from palyra.auth.oauth import OPENAI_OAUTH_CALLBACK_PATH
from palyra.auth.oauth_callback_page import render_callback_page
from palyra.daemon.surfaces.console.console_format import (
    callback_headers,
    forwarded_header,
    group_health,
    loopback_redirect_uri,
    session_id,
)
from palyra.model import PalyraError


@pytest.mark.parametrize(
    ("server", "origin"),
    [
        (("127.0.0.1", 7142), "http://127.0.0.1:7142"),
        (("::1", 9000), "http://[::1]:9000"),
        (("localhost", 80), "http://localhost:80"),
    ],
)
def test_redirect_uri_is_the_loopback_origin_plus_the_callback_path(
    server: tuple[str, int], origin: str
) -> None:
    assert loopback_redirect_uri(server) == origin + OPENAI_OAUTH_CALLBACK_PATH


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com"])
def test_redirect_uri_on_a_non_loopback_address_is_refused(host: str) -> None:
    with pytest.raises(PalyraError) as caught:
        loopback_redirect_uri((host, 7142))
    assert "http://127.0.0.1:7142" in caught.value.envelope.message


def test_forwarded_headers_are_found_by_any_spelling() -> None:
    assert forwarded_header(["Accept", "X-Forwarded-Proto"]) == "x-forwarded-proto"
    assert forwarded_header(["forwarded"]) == "forwarded"
    assert forwarded_header(["accept", "x-forwardedness"]) is None


def test_session_is_the_header_or_a_secret_keyed_digest_of_the_identity() -> None:
    assert session_id(" tab-1 ", "admin:config:-", b"k") == "tab-1"
    derived = session_id(None, "admin:store:tok_1", b"k1")
    assert derived.startswith("adm_") and "tok_1" not in derived
    assert session_id(None, "admin:store:tok_1", b"k1") == derived
    assert session_id(None, "admin:store:tok_1", b"k2") != derived
    for bad in ("a;b", "x" * 300, "caf\u00e9"):
        with pytest.raises(PalyraError):
            session_id(bad, "admin:config:-", b"k")


def test_csp_allows_exactly_the_page_script_by_hash() -> None:
    page = render_callback_page(title="t", body="</script><script>x()", payload={"a": 1})
    csp = callback_headers(page)["content-security-policy"]
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert callback_headers("<p>no script</p>")["content-security-policy"].count("'none'") >= 2


def test_health_rows_group_by_scope_kind() -> None:
    rows = [{"scope": "provider:p"}, {"scope": "target:p/m"}, {"scope": "credential:p/c"}]
    grouped = group_health([*rows, {"scope": "other"}])
    assert grouped == {
        "providers": [rows[0]],
        "models": [rows[1]],
        "credentials": [rows[2]],
    }
