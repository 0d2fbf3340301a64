"""Which HTTP headers travel between a client and an upstream, both ways (pure rules).

Requests: a client's vendor headers (``anthropic-beta``, ``anthropic-version`` to Anthropic;
``openai-beta``, ``openai-organization``, ``openai-project`` to OpenAI and OpenAI-compatible
servers) and the headers a provider's ``forward_headers`` allowlist names. Hop-by-hop headers and
credentials never pass, whatever a config says. Answers: the headers clients read (rate limits,
the upstream's request id, ``retry-after``) come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ANTHROPIC_CLIENT_HEADERS = frozenset({"anthropic-beta", "anthropic-version"})
OPENAI_CLIENT_HEADERS = frozenset({"openai-beta", "openai-organization", "openai-project"})
VENDOR_CLIENT_HEADERS = ANTHROPIC_CLIENT_HEADERS | OPENAI_CLIENT_HEADERS

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "accept-encoding",
    }
)
CREDENTIALS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
NEVER_FORWARDED = HOP_BY_HOP | CREDENTIALS

ANSWER_HEADERS = frozenset({"request-id", "x-request-id", "retry-after"})
ANSWER_HEADER_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")


def refused_forward_header(name: str) -> str | None:
    """Why ``name`` may not be in a ``forward_headers`` allowlist, or None when it may."""
    lower = name.strip().lower()
    if lower in CREDENTIALS:
        return f"{name!r} carries a credential; Palyra sends the provider's own"
    if lower in HOP_BY_HOP:
        return f"{name!r} belongs to one HTTP connection, not to the request"
    return None


def client_headers(raw: Iterable[tuple[bytes, bytes]], wanted: frozenset[bytes]) -> dict[str, str]:
    """The headers among ``raw`` (an ASGI scope's, names lowercased) whose names are ``wanted``;
    one pass over the request's headers, nothing built for a request that sends none."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in wanted:
            found[name.decode("latin-1")] = value.decode("latin-1")
    return found


def forwarded(
    sent: Mapping[str, str], vendor: frozenset[str], allowlist: frozenset[str]
) -> dict[str, str]:
    """What a provider passes on from the client's ``sent`` headers: its vendor's own and those
    its allowlist names (credentials and hop-by-hop headers were never collected)."""
    return {k: v for k, v in sent.items() if k in vendor or k in allowlist}


_ANSWER_NAMES = frozenset(name.encode("latin-1") for name in ANSWER_HEADERS)
# The first bytes of every wanted name (request-id, retry-after, x-..., anthropic-...), any case.
ANSWER_FIRST_BYTES = frozenset({b"r", b"R", b"x", b"X", b"a", b"A"})


def answer_header_name(name: bytes) -> str | None:
    """``name`` lowercased and decoded when a client reads it from an answer, else None. Callers
    test ``name[:1] in ANSWER_FIRST_BYTES`` first: most headers (date, server, cf-ray...) stop
    at that one test."""
    lower = name.lower()
    if lower in _ANSWER_NAMES or lower.startswith(ANSWER_HEADER_PREFIXES):
        return lower.decode("latin-1")
    return None


def answer_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The upstream answer's headers that a client reads, names lowercased (only those are
    decoded: an answer carries twenty-odd headers, a handful of them wanted). The pooled
    transport collects them while it parses the head; this is for answers that came another
    way."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name[:1] in ANSWER_FIRST_BYTES:
            wanted = answer_header_name(name)
            if wanted is not None:
                found[wanted] = value.decode("latin-1")
    return found
