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


_SEALED_PREFIX = "v1."
_SEAL_INFO = b"palyra oauth pkce verifier v1"


def _seal_key(state: str) -> bytes:
    # Imported here: only OAuth starts and callbacks need the cipher.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(
        state.encode("ascii")
    )


def seal_verifier(verifier: str, state: str, random: RandomBytes = os.urandom) -> str:
    """The verifier encrypted under a key derived from ``state`` (AES-256-GCM).

    The store keeps only a digest of ``state``; the browser brings ``state`` back with the code.
    So the stored attempt alone never yields the verifier: reading the database during a login
    reveals nothing usable, and nothing secret sits on disk in plaintext.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = random(12)
    sealed = AESGCM(_seal_key(state)).encrypt(nonce, verifier.encode("ascii"), None)
    return _SEALED_PREFIX + _b64url(nonce + sealed)


def open_verifier(stored: str, state: str) -> str:
    """The verifier :func:`seal_verifier` sealed with this ``state``; raises ``ValueError`` when
    the state does not open it. Attempts stored before sealing existed hold plaintext."""
    if not stored.startswith(_SEALED_PREFIX):
        return stored
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    packed = stored[len(_SEALED_PREFIX) :]
    raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
    try:
        return AESGCM(_seal_key(state)).decrypt(raw[:12], raw[12:], None).decode("ascii")
    except InvalidTag:
        raise ValueError("the sealed PKCE verifier does not open with this state") from None
