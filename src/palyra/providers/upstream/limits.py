"""How much of an upstream's answer Palyra will hold: bounds on a whole body and on one SSE event.

Without them a misbehaving or hostile upstream decides the daemon's memory (a 200 MB answer
was buffered whole and took the process from 206 MB to 804 MB). Past a bound the connection is
closed at once, nothing more is read, and the request fails with ``malformed_response``.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx2

DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024
"""A whole answer (JSON or an error body). The largest legitimate one is an embeddings batch at
the input limit (2048 inputs) with 3072 float dimensions: about 90 MB of JSON."""
DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024
"""One SSE event of a stream (a stream as a whole is not bounded: it is read as it is sent)."""


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    """``[model_provider] max_upstream_body_bytes`` and ``max_upstream_event_bytes``."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES


DEFAULT_UPSTREAM_LIMITS = UpstreamLimits()


class UpstreamTooLarge(httpx2.RemoteProtocolError):
    """An upstream answer or stream event past its limit; the connection was closed."""


def body_too_large(limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"the upstream answer is larger than {limit} bytes, so it was refused and the connection "
        "closed; raise [model_provider] max_upstream_body_bytes in palyra.toml if such answers "
        "are expected"
    )


def event_too_large(limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"an upstream stream event is larger than {limit} bytes, so the stream was refused and "
        "the connection closed; raise [model_provider] max_upstream_event_bytes in palyra.toml "
        "if such events are expected"
    )


def limits_of(client: httpx2.AsyncClient) -> UpstreamLimits:
    """The limits a Palyra upstream client was built with; the defaults for any other client."""
    limits = getattr(client, "upstream_limits", None)
    return limits if isinstance(limits, UpstreamLimits) else DEFAULT_UPSTREAM_LIMITS


def why(exc: Exception) -> str:
    """How a started stream broke, for its error: a refused size says which limit and how to
    raise it; anything else is named by its type."""
    return str(exc) if isinstance(exc, UpstreamTooLarge) else type(exc).__name__
