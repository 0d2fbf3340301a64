"""The exact values of the secrets this process holds, so any text can be scrubbed of them.

Patterns catch secrets by shape; an upstream that echoes the bare key Palyra sent (``gsk_...``,
``xai-...``, ``AIza...``, an Azure hex key) matches no shape. Every place that resolves or decrypts
a secret registers its value here, and :func:`palyra.model.redact` removes each registered value
wherever it appears. Values live only in memory and are never logged; ``repr`` shows a count.

Scrubbing is one pass over the text: each position's first :data:`MIN_SECRET_CHARS` characters are
looked up in a dict of value prefixes, so the cost grows with the text, not with the number of
secrets. It runs on error paths only (``redact`` builds error messages).
"""

from __future__ import annotations

import threading

MIN_SECRET_CHARS = 8
"""Shorter values are not registered: an 8-character key is not a real key, and a short value
would blank out ordinary words wherever they occur."""
MAX_KNOWN_SECRETS = 4096
"""Past this, the oldest value is forgotten (a rotated key or refreshed token no longer in use)."""
REPLACEMENT = "[REDACTED]"


class KnownSecrets:
    """A bounded set of secret values with a single-pass scrubber; safe across threads."""

    def __init__(self, *, capacity: int = MAX_KNOWN_SECRETS) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._values: dict[str, None] = {}  # insertion order = age, for eviction
        # first MIN_SECRET_CHARS characters -> values with that prefix, longest first. Replaced,
        # never mutated, so a scrub running in another thread sees a consistent tuple.
        self._by_prefix: dict[str, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"KnownSecrets({len(self._values)} values)"

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: str) -> None:
        """Remember ``value`` (and its stripped form); short values are ignored."""
        if value in self._values:
            return
        for candidate in {value, value.strip()}:
            if len(candidate) >= MIN_SECRET_CHARS:
                self._insert(candidate)

    def _insert(self, value: str) -> None:
        with self._lock:
            if value in self._values:
                return
            self._values[value] = None
            self._index(value, add=True)
            while len(self._values) > self._capacity:
                oldest = next(iter(self._values))
                del self._values[oldest]
                self._index(oldest, add=False)

    def _index(self, value: str, *, add: bool) -> None:
        prefix = value[:MIN_SECRET_CHARS]
        others = tuple(v for v in self._by_prefix.get(prefix, ()) if v != value)
        group = (*others, value) if add else others
        if group:
            self._by_prefix[prefix] = tuple(sorted(group, key=len, reverse=True))
        else:
            self._by_prefix.pop(prefix, None)

    def copy(self) -> KnownSecrets:
        """Another registry holding the same values (tests give each test its own)."""
        other = KnownSecrets(capacity=self._capacity)
        with self._lock:
            other._values = dict(self._values)
            other._by_prefix = dict(self._by_prefix)
        return other

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._by_prefix.clear()

    def scrub(self, text: str) -> str:
        """``text`` with every known value replaced by ``[REDACTED]``."""
        by_prefix = self._by_prefix
        if not by_prefix or len(text) < MIN_SECRET_CHARS:
            return text
        parts: list[str] = []
        start = i = 0
        last = len(text) - MIN_SECRET_CHARS
        while i <= last:
            group = by_prefix.get(text[i : i + MIN_SECRET_CHARS])
            if group is not None:
                hit = next((v for v in group if text.startswith(v, i)), None)
                if hit is not None:
                    parts.append(text[start:i])
                    parts.append(REPLACEMENT)
                    i = start = i + len(hit)
                    continue
            i += 1
        if not parts:
            return text
        parts.append(text[start:])
        return "".join(parts)


KNOWN_SECRETS = KnownSecrets()
"""The process-wide registry that ``redact`` consults."""


def remember_secret(value: str) -> None:
    """Register a secret this process now holds, so no error text can carry it."""
    KNOWN_SECRETS.add(value)
