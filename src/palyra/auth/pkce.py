"""PKCE (RFC 7636, S256) and the random values an OAuth attempt needs."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable

RandomBytes = Callable[[int], bytes]

VERIFIER_BYTES = 32
STATE_BYTES = 32


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_pkce_verifier(random: RandomBytes = os.urandom) -> str:
    """A 43-character verifier: 32 random bytes, base64url without padding."""
    return _b64url(random(VERIFIER_BYTES))


def pkce_challenge(verifier: str) -> str:
    """The S256 challenge: base64url(SHA-256(verifier)) without padding."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def generate_state(random: RandomBytes = os.urandom) -> str:
    """An unguessable OAuth ``state`` (256 bits), separate from any id we store or show."""
    return _b64url(random(STATE_BYTES))


def generate_attempt_id(random: RandomBytes = os.urandom) -> str:
    """A public handle for polling an attempt; knowing it does not let anyone finish it."""
    return "oa_" + random(16).hex()


def digest(value: str) -> str:
    """SHA-256 hex of a bearer-like value, so the store never holds the value itself."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
