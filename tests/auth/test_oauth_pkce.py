"""PKCE values and the endpoint rules of the OpenAI OAuth config."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from palyra.auth.oauth_config import OpenAIOAuthConfig, check_endpoint, normalize_scopes
from palyra.auth.pkce import (
    generate_pkce_verifier,
    generate_state,
    open_verifier,
    pkce_challenge,
    seal_verifier,
)
from palyra.model import PalyraError

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def test_verifier_is_43_base64url_characters_from_32_random_bytes() -> None:
    verifier = generate_pkce_verifier(lambda n: bytes(range(n)))
    assert len(verifier) == 43
    assert _B64URL.match(verifier)
    assert base64.urlsafe_b64decode(verifier + "=") == bytes(range(32))


def test_verifiers_and_states_differ_between_calls() -> None:
    assert len({generate_pkce_verifier() for _ in range(100)}) == 100
    states = {generate_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(base64.urlsafe_b64decode(s + "=")) * 8 >= 128 for s in states)


def test_challenge_matches_rfc7636_appendix_b_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_challenge_is_unpadded_sha256() -> None:
    verifier = generate_pkce_verifier()
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert pkce_challenge(verifier) == expected.rstrip(b"=").decode()


def test_default_config_points_at_openai() -> None:
    config = OpenAIOAuthConfig()
    assert config.authorization_endpoint == "https://auth.openai.com/oauth/authorize"
    assert config.token_endpoint == "https://auth.openai.com/oauth/token"
    assert config.scopes == "openid profile email offline_access"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://auth.example.com/oauth/token", "plain http"),
        ("https://user:pw@auth.example.com/oauth/token", "credentials"),
        ("https://auth.example.com/oauth/token?x=1", "has a query"),
        ("https://auth.example.com/oauth/token#x", "has a '#' fragment"),
        ("ftp://auth.example.com/token", "not an absolute http(s) URL (it uses ftp://)"),
        ("/oauth/token", "not an absolute http(s) URL"),
        ("not a url", "not an absolute http(s) URL"),
        ("http://[::1/oauth/token", "is not a valid URL"),
        ("https://10.0.0.1/oauth/token", "points at 10.0.0.1, a private address"),
        ("https://0x7f000001/oauth/token", "not written as four decimal numbers"),
    ],
)
def test_endpoint_rules_refuse_unsafe_urls(url: str, problem: str) -> None:
    with pytest.raises(PalyraError) as info:
        OpenAIOAuthConfig(token_endpoint=url)
    assert problem in str(info.value)
    assert "token_endpoint" in str(info.value)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1:9000", "localhost:1455", "[::1]:80"])
def test_plain_http_is_allowed_to_loopback(host: str) -> None:
    assert check_endpoint(f"http://{host}/oauth/token", what="token_endpoint")


def test_issuer_derives_both_endpoints() -> None:
    config = OpenAIOAuthConfig.for_issuer("http://127.0.0.1:8080/", validation_base_url=None)
    assert config.authorization_endpoint == "http://127.0.0.1:8080/oauth/authorize"
    assert config.token_endpoint == "http://127.0.0.1:8080/oauth/token"
    assert config.validation_base_url is None


def test_scopes_are_deduplicated_in_order_and_empty_means_default() -> None:
    assert normalize_scopes("openid  email openid") == "openid email"
    assert normalize_scopes("  ") == "openid profile email offline_access"


def test_empty_client_id_names_the_fix() -> None:
    with pytest.raises(PalyraError, match="--client-id"):
        OpenAIOAuthConfig(client_id=" ")


def test_a_sealed_verifier_opens_only_with_its_state() -> None:
    verifier, state = generate_pkce_verifier(), generate_state()
    sealed = seal_verifier(verifier, state)
    assert verifier not in sealed and state not in sealed
    assert open_verifier(sealed, state) == verifier
    with pytest.raises(ValueError, match="does not open with this state"):
        open_verifier(sealed, generate_state())
    assert seal_verifier(verifier, state) != sealed  # a fresh nonce each time


def test_an_attempt_stored_before_sealing_keeps_working() -> None:
    legacy = generate_pkce_verifier()
    assert open_verifier(legacy, generate_state()) == legacy
