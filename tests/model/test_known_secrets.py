"""Exact secret values are scrubbed from any text, whatever their shape; prose stays prose."""

from __future__ import annotations

import threading

import pytest

from palyra.model import ErrorEnvelope, FailureClass, redact, remember_secret
from palyra.model.known_secrets import MIN_SECRET_CHARS, KnownSecrets
from palyra.providers.base import Credential
from palyra.providers.errors import classify_http_error
from palyra.vault import resolve_secret_ref

SHAPES = {
    "azure hex": "0123456789abcdef0123456789abcdef",
    "groq": "gsk_WXyz0123456789AbCdEfGhIjKlMnOpQrStUv",
    "xai": "xai-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "google": "AIzaSyA-bcdefghijklmnopqrstuvwxyz012345",
    "bare base62": "Zq8RvT3mLw6NxP1kYc4HbJ7gFd2SaE5u",
    "with spaces": "three word passphrase",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_known_value_is_scrubbed_wherever_it_sits(name: str) -> None:
    secrets = KnownSecrets()
    value = SHAPES[name]
    secrets.add(value)
    for text in (value, f"key {value} rejected", f"({value})", f"{value}{value}", f"x{value}y"):
        scrubbed = secrets.scrub(text)
        assert value not in scrubbed
        assert "[REDACTED]" in scrubbed
    assert secrets.scrub("nothing here at all") == "nothing here at all"


def test_the_longest_value_sharing_a_prefix_wins_and_neighbours_survive() -> None:
    secrets = KnownSecrets()
    secrets.add("abcdefgh-short")
    secrets.add("abcdefgh-short-and-longer")
    assert secrets.scrub("a abcdefgh-short-and-longer b") == "a [REDACTED] b"
    assert secrets.scrub("a abcdefgh-short b abcdefgh-other") == "a [REDACTED] b abcdefgh-other"


def test_short_values_are_not_registered_and_the_oldest_is_forgotten_past_capacity() -> None:
    secrets = KnownSecrets(capacity=2)
    secrets.add("x" * (MIN_SECRET_CHARS - 1))
    assert len(secrets) == 0
    secrets.add("first-secret-1")
    secrets.add("second-secret-2")
    secrets.add("third-secret-3")
    assert len(secrets) == 2
    assert secrets.scrub("first-secret-1 third-secret-3") == "first-secret-1 [REDACTED]"
    assert "secret" not in repr(secrets)  # a count, never a value


def test_a_value_with_a_trailing_newline_is_caught_without_it() -> None:
    secrets = KnownSecrets()
    secrets.add("from-a-file-0123\n")
    assert secrets.scrub("echo: from-a-file-0123.") == "echo: [REDACTED]."


def test_adding_from_many_threads_while_scrubbing_loses_nothing() -> None:
    secrets = KnownSecrets()
    values = [f"thread-secret-{i:04d}" for i in range(400)]

    def add(chunk: list[str]) -> None:
        for value in chunk:
            secrets.add(value)
            secrets.scrub(f"({value})")

    threads = [threading.Thread(target=add, args=(values[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = " ".join(values)
    assert secrets.scrub(text) == " ".join(["[REDACTED]"] * len(values))


def test_redact_and_every_envelope_remove_process_secrets() -> None:
    value = "Rk2pW9sXq4vB7nTz1yHc6mJd3LfG8aUe"
    assert value in redact(f"upstream said {value}")
    remember_secret(value)
    assert redact(f"upstream said {value}") == "upstream said [REDACTED]"
    envelope = ErrorEnvelope.of(FailureClass.AUTH_INVALID, f"bad key {value}")
    assert value not in envelope.message


def test_a_key_echoed_near_the_end_of_a_long_text_body_is_not_cut_into_view() -> None:
    value = "Hx5nQ2wE8rT1yU4iO7pA3sD6fG9hJ0kL"
    remember_secret(value)
    body = ("z" * 490 + value + " trailing").encode()
    message = classify_http_error(401, body, {}, provider="p").message
    assert value[:8] not in message and value[-8:] not in message


async def test_resolving_a_reference_and_building_a_credential_register_the_value() -> None:
    resolved = "EnvRef0123secretValueNeverSeenBefore"
    assert resolved in redact(resolved)
    await resolve_secret_ref("env:SOME_KEY", None, environ={"SOME_KEY": resolved})
    assert redact(resolved) == "[REDACTED]"
    direct = "CredentialOnly9876NeverResolvedAnywhere"
    assert direct in redact(direct)
    Credential(direct)
    assert redact(direct) == "[REDACTED]"
