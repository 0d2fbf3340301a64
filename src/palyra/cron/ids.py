"""ULIDs: 48 bits of milliseconds then 80 random bits, in Crockford base32, so ids sort by creation."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_LENGTH = 26


def new_ulid(now_ms: int | None = None, randbits: int | None = None) -> str:
    """A new ULID; ``now_ms`` and ``randbits`` are for tests."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = secrets.randbits(80) if randbits is None else randbits
    if not 0 <= ms < 2**48 or not 0 <= rand < 2**80:
        raise ValueError("a ULID holds 48 bits of time and 80 bits of randomness")
    value = (ms << 80) | rand
    chars = []
    for _ in range(ULID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(text: str) -> bool:
    return len(text) == ULID_LENGTH and all(c in _ALPHABET for c in text.upper()) and text[0] <= "7"
