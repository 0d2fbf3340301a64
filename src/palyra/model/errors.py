"""Every failure as data: a failure class plus what routing and callers may do about it."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from palyra.model.known_secrets import KNOWN_SECRETS, REPLACEMENT

MAX_ERROR_MESSAGE_CHARS = 1000


class FailureClass(StrEnum):
    """Why a call failed. Routing decides retries and failover from this, never from text."""

    AUTH_INVALID = "auth_invalid"
    AUTH_EXPIRED = "auth_expired"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    CONTEXT_TOO_LONG = "context_too_long"
    INVALID_REQUEST = "invalid_request"
    CONTENT_POLICY = "content_policy"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    MALFORMED_RESPONSE = "malformed_response"
    STREAM_INTERRUPTED = "stream_interrupted"
    UNSUPPORTED_CAPABILITY = "unsupported_capability"
    CIRCUIT_OPEN = "circuit_open"
    CONFIG = "config"
    INTERNAL = "internal"


class _ClassPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)
    http_status: int
    retryable: bool
    failover_allowed: bool


# (HTTP status we answer with, retry the same target?, move to another target?)
_POLICY: dict[FailureClass, _ClassPolicy] = {
    FailureClass.AUTH_INVALID: _ClassPolicy(
        http_status=401, retryable=False, failover_allowed=True
    ),
    FailureClass.AUTH_EXPIRED: _ClassPolicy(
        http_status=401, retryable=False, failover_allowed=True
    ),
    FailureClass.PERMISSION_DENIED: _ClassPolicy(
        http_status=403, retryable=False, failover_allowed=True
    ),
    FailureClass.RATE_LIMITED: _ClassPolicy(http_status=429, retryable=True, failover_allowed=True),
    FailureClass.QUOTA_EXHAUSTED: _ClassPolicy(
        http_status=429, retryable=False, failover_allowed=True
    ),
    FailureClass.CONTEXT_TOO_LONG: _ClassPolicy(
        http_status=400, retryable=False, failover_allowed=True
    ),
    FailureClass.INVALID_REQUEST: _ClassPolicy(
        http_status=400, retryable=False, failover_allowed=False
    ),
    FailureClass.CONTENT_POLICY: _ClassPolicy(
        http_status=400, retryable=False, failover_allowed=False
    ),
    FailureClass.NOT_FOUND: _ClassPolicy(http_status=404, retryable=False, failover_allowed=True),
    FailureClass.TIMEOUT: _ClassPolicy(http_status=504, retryable=True, failover_allowed=True),
    FailureClass.CONNECTION: _ClassPolicy(http_status=502, retryable=True, failover_allowed=True),
    FailureClass.UPSTREAM_UNAVAILABLE: _ClassPolicy(
        http_status=503, retryable=True, failover_allowed=True
    ),
    FailureClass.MALFORMED_RESPONSE: _ClassPolicy(
        http_status=502, retryable=True, failover_allowed=True
    ),
    FailureClass.STREAM_INTERRUPTED: _ClassPolicy(
        http_status=502, retryable=False, failover_allowed=False
    ),
    FailureClass.UNSUPPORTED_CAPABILITY: _ClassPolicy(
        http_status=400, retryable=False, failover_allowed=True
    ),
    FailureClass.CIRCUIT_OPEN: _ClassPolicy(
        http_status=503, retryable=False, failover_allowed=True
    ),
    FailureClass.CONFIG: _ClassPolicy(http_status=500, retryable=False, failover_allowed=False),
    FailureClass.INTERNAL: _ClassPolicy(http_status=500, retryable=False, failover_allowed=False),
}


def class_policy(failure_class: FailureClass) -> tuple[int, bool, bool]:
    """(http_status, retryable, failover_allowed) defaults for a failure class."""
    p = _POLICY[failure_class]
    return p.http_status, p.retryable, p.failover_allowed


_SECRET_REF = re.compile(r"(?:env|vault|file):\S")


def looks_like_a_key(value: str) -> bool:
    """Whether an unquoted word after ``token:`` or ``Bearer`` is shaped like a secret.

    A digit anywhere, or 20+ characters of mixed case: prose ("secret reference", "anyone who
    can reach it", "Bearer auth") has neither, keys and tokens almost always have one.
    """
    if any(c.isdigit() for c in value):
        return True
    return len(value) >= 20 and not value.islower() and not value.isupper()


def _redact_value(match: re.Match[str]) -> str:
    """Keep the name and separator; a quoted value goes whole, spaces and all.

    A secret reference (``env:NAME``, ``vault:scope/name``, ``file:PATH``) is not a secret and
    stays; after ``:`` (the prose separator) an unquoted value must look like a key.
    """
    value = match.group(3)
    quote = value[0] if value[0] in "\"'" else ""
    if _SECRET_REF.match(value.strip("\"'")):
        return match.group(0)
    prose = not looks_like_a_key(value) and REPLACEMENT not in value
    if not quote and ":" in match.group(2) and prose:
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{quote}[REDACTED]{quote}"


def _redact_bearer(match: re.Match[str]) -> str:
    if not looks_like_a_key(match.group(2)):
        return match.group(0)
    return f"{match.group(1)} [REDACTED]"


_REDACTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+([A-Za-z0-9._~+/=-]+)"), _redact_bearer),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-[REDACTED]"),
    # Shapes of other providers' keys: Groq, xAI, Google.
    (re.compile(r"\bgsk_[A-Za-z0-9]{16,}"), "gsk_[REDACTED]"),
    (re.compile(r"\bxai-[A-Za-z0-9]{16,}"), "xai-[REDACTED]"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), "AIza[REDACTED]"),
    (
        # Named secrets: `api_key: v`, `"token": "v"`, `password=v`. Not after `/` or `.`, so
        # paths like `vault:global/api_key` and `config.token` stay readable.
        re.compile(
            r"(?i)(?<![/.\w-])(api[_-]?key|token|secret|password|access_token|refresh_token"
            r"|client_secret|x-api-key)([\"']?\s*[:=]\s*)(\"[^\"]*\"?|'[^']*'?|[^\s\"'&,;}]+)"
        ),
        _redact_value,
    ),
    (
        # A bare `key` only in `key=value` form (query strings), so prose like "key: line 1" survives.
        re.compile(r"(?i)(?<![/.\w-])(key)(\s*=\s*)(\"[^\"]*\"?|'[^']*'?|[^\s\"'&,;}]+)"),
        _redact_value,
    ),
)


def redact(text: str, *, limit: int = MAX_ERROR_MESSAGE_CHARS) -> str:
    """Remove every secret value this process holds, then bearer tokens, provider-shaped keys
    and ``name=value`` secrets, then cap the length."""
    text = KNOWN_SECRETS.scrub(text)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


class ErrorEnvelope(BaseModel):
    """One failure, safe to log and to show: the message is always redacted and capped."""

    model_config = ConfigDict(frozen=True)

    failure_class: FailureClass
    message: str
    http_status: int
    retryable: bool
    failover_allowed: bool
    retry_after_s: float | None = None
    provider: str | None = None
    model: str | None = None
    upstream_status: int | None = None
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """The upstream error answer's headers a client reads (rate limits, request id,
    ``retry-after``: palyra.model.forwarding), returned with the error as with an answer."""

    @classmethod
    def of(
        cls,
        failure_class: FailureClass,
        message: str,
        *,
        retry_after_s: float | None = None,
        provider: str | None = None,
        model: str | None = None,
        upstream_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
    ) -> ErrorEnvelope:
        """Build an envelope with the class's default status and retry/failover policy."""
        status, retryable, failover = class_policy(failure_class)
        return cls(
            failure_class=failure_class,
            message=redact(message),
            http_status=http_status if http_status is not None else status,
            retryable=retryable,
            failover_allowed=failover,
            retry_after_s=retry_after_s,
            provider=provider,
            model=model,
            upstream_status=upstream_status,
            code=code,
            param=param,
        )


class PalyraError(Exception):
    """The one exception type that crosses layers; it carries an :class:`ErrorEnvelope`."""

    def __init__(self, envelope: ErrorEnvelope) -> None:
        super().__init__(envelope.message)
        self.envelope = envelope

    @classmethod
    def of(cls, failure_class: FailureClass, message: str, **kwargs: object) -> PalyraError:
        return cls(ErrorEnvelope.of(failure_class, message, **kwargs))  # type: ignore[arg-type]

    @property
    def failure_class(self) -> FailureClass:
        return self.envelope.failure_class

    def __str__(self) -> str:
        return f"{self.envelope.failure_class.value}: {self.envelope.message}"
