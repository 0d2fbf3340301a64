"""The redactor's patterns: key-shaped values go, prose that merely names a secret stays."""

from __future__ import annotations

import pytest

from palyra.model import redact


@pytest.mark.parametrize(
    "text",
    [
        # Messages Palyra itself writes (issue 10 item 8): a word after "api_key:" is not a key.
        "provider openai-main api_key: secret reference 'env:FAKE_OPENAI_KEY': environment "
        "variable FAKE_OPENAI_KEY is not set",
        "refusing to listen on 0.0.0.0, which is not a loopback address, with no client token: "
        "anyone who can reach it could use your providers",
        "the token: expired, sign in again",
        "password: required",
        "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)",
        "api_key = 'env:OPENAI_API_KEY'",
        'api_key="vault:global/openai"',
        "token: file:/run/secrets/token",
        "x-api-key: header is required",
    ],
)
def test_prose_that_names_a_secret_survives(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("raw", "leaked", "kept"),
    [
        ("api_key: 0123456789abcdef0123", "0123456789abcdef", "api_key: [REDACTED]"),
        ("token: Zq8RvTmLwNxPkYcHbJgFdSaEu", "Zq8RvTmLwNxPkYc", "token: [REDACTED]"),
        ("password: hunter2", "hunter2", "password: [REDACTED]"),
        ("Authorization: Bearer eyJhbGciOi.e30.c2ln", "eyJhbGciOi", "Bearer [REDACTED]"),
        ("bearer AbCdEfGhIjKlMnOpQrStUv", "AbCdEfGhIjKl", "bearer [REDACTED]"),
        ('{"token": "plainword"}', "plainword", '{"token": "[REDACTED]"}'),
        ("password=plainword", "plainword", "password=[REDACTED]"),
        ("used gsk_WXyz0123456789AbCdEfGhIj", "WXyz0123", "used gsk_[REDACTED]"),
        ("used xai-AbCdEfGhIjKlMnOpQr0123", "AbCdEfGh", "used xai-[REDACTED]"),
        ("used AIzaSyA-bcdefghijklmnopqrstuvwxyz012", "SyA-bcdef", "used AIza[REDACTED]"),
    ],
)
def test_key_shaped_values_are_still_caught(raw: str, leaked: str, kept: str) -> None:
    redacted = redact(raw)
    assert leaked not in redacted
    assert kept in redacted
