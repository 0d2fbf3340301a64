"""Turn an upstream HTTP failure or transport error into an ``ErrorEnvelope``.

Structured codes decide first (OpenAI ``error.type``/``error.code``, Anthropic ``error.type``);
the HTTP status second; words in the message only as a last resort.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

import httpx2
import orjson

from palyra.model import ErrorEnvelope, FailureClass, PalyraError
from palyra.model.errors import MAX_ERROR_MESSAGE_CHARS
from palyra.model.forwarding import answer_headers
from palyra.providers.upstream.limits import UpstreamTooLarge

MAX_RETRY_AFTER_S = 3600.0

_CODE_CLASSES: dict[str, FailureClass] = {
    # OpenAI error.code / error.type
    "invalid_api_key": FailureClass.AUTH_INVALID,
    "invalid_authentication": FailureClass.AUTH_INVALID,
    "authentication_error": FailureClass.AUTH_INVALID,
    "token_expired": FailureClass.AUTH_EXPIRED,
    "insufficient_quota": FailureClass.QUOTA_EXHAUSTED,
    "billing_hard_limit_reached": FailureClass.QUOTA_EXHAUSTED,
    "rate_limit_exceeded": FailureClass.RATE_LIMITED,
    "rate_limit_error": FailureClass.RATE_LIMITED,
    "requests": FailureClass.RATE_LIMITED,
    "tokens": FailureClass.RATE_LIMITED,
    "context_length_exceeded": FailureClass.CONTEXT_TOO_LONG,
    "string_above_max_length": FailureClass.CONTEXT_TOO_LONG,
    "content_policy_violation": FailureClass.CONTENT_POLICY,
    "content_filter": FailureClass.CONTENT_POLICY,
    "model_not_found": FailureClass.NOT_FOUND,
    "not_found_error": FailureClass.NOT_FOUND,
    "permission_error": FailureClass.PERMISSION_DENIED,
    "permission_denied": FailureClass.PERMISSION_DENIED,
    "invalid_request_error": FailureClass.INVALID_REQUEST,
    "request_too_large": FailureClass.INVALID_REQUEST,
    "overloaded_error": FailureClass.UPSTREAM_UNAVAILABLE,
    "api_error": FailureClass.UPSTREAM_UNAVAILABLE,
    "server_error": FailureClass.UPSTREAM_UNAVAILABLE,
    "timeout_error": FailureClass.TIMEOUT,
    # Anthropic
    "billing_error": FailureClass.QUOTA_EXHAUSTED,
}

_STATUS_CLASSES: dict[int, FailureClass] = {
    400: FailureClass.INVALID_REQUEST,
    401: FailureClass.AUTH_INVALID,
    402: FailureClass.QUOTA_EXHAUSTED,
    403: FailureClass.PERMISSION_DENIED,
    404: FailureClass.NOT_FOUND,
    408: FailureClass.TIMEOUT,
    409: FailureClass.UPSTREAM_UNAVAILABLE,
    413: FailureClass.INVALID_REQUEST,
    422: FailureClass.INVALID_REQUEST,
    429: FailureClass.RATE_LIMITED,
    504: FailureClass.TIMEOUT,
    529: FailureClass.UPSTREAM_UNAVAILABLE,
}

_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "maximum context",
    "prompt is too long",
    "too many tokens",
)


def _clamp_delay(seconds: float) -> float | None:
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date), capped.

    Header names match in any case, whatever mapping is passed; ``nan`` counts as garbage.
    """
    if not isinstance(headers, httpx2.Headers):
        headers = {key.lower(): value for key, value in headers.items()}
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            delay = _clamp_delay(float(raw_ms) / 1000.0)
        except ValueError:
            delay = None
        if delay is not None:
            return delay
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return _clamp_delay(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return min(max(when - current, 0.0), MAX_RETRY_AFTER_S)


def _error_fields(body: bytes) -> tuple[str | None, str | None, str | None, str]:
    """(type, code, param, message) from an OpenAI or Anthropic error body, or from raw text."""
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):

            def _s(v: Any) -> str | None:
                return str(v) if isinstance(v, str | int) and v != "" else None

            return (
                _s(err.get("type")),
                _s(err.get("code")),
                _s(err.get("param")),
                str(err.get("message") or ""),
            )
        if isinstance(err, str):
            return None, None, None, err
        if isinstance(data.get("detail"), str):
            return None, None, None, data["detail"]
    # More than the message keeps: ``redact`` must see a secret whole before it caps the length.
    return None, None, None, body[: 4 * MAX_ERROR_MESSAGE_CHARS].decode("utf-8", errors="replace")


def classify_http_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str | None = None,
    model: str | None = None,
) -> ErrorEnvelope:
    """The envelope for a non-2xx upstream answer."""
    if status < 400:
        return _not_an_answer(status, provider=provider, model=model)
    err_type, code, param, message = _error_fields(body)
    failure: FailureClass | None = None
    for key in (code, err_type):
        if key and key in _CODE_CLASSES:
            failure = _CODE_CLASSES[key]
            break
    lowered = message.lower()
    if failure in (None, FailureClass.INVALID_REQUEST) and any(
        w in lowered for w in _CONTEXT_WORDS
    ):
        failure = FailureClass.CONTEXT_TOO_LONG
    if failure is None:
        failure = _STATUS_CLASSES.get(status)
    if failure is None:
        failure = (
            FailureClass.UPSTREAM_UNAVAILABLE if status >= 500 else FailureClass.INVALID_REQUEST
        )
    if failure is FailureClass.AUTH_INVALID and "expired" in lowered:
        failure = FailureClass.AUTH_EXPIRED
    if failure is FailureClass.RATE_LIMITED and ("quota" in lowered or "billing" in lowered):
        failure = FailureClass.QUOTA_EXHAUSTED
    if failure is FailureClass.INVALID_REQUEST and "credit balance" in lowered:
        # Anthropic reports an empty prepaid balance as a 400 invalid_request_error.
        failure = FailureClass.QUOTA_EXHAUSTED
    where = f"{provider}: " if provider else ""
    text = message or f"HTTP {status}"
    return ErrorEnvelope.of(
        failure,
        f"{where}upstream answered {status}: {text}",
        retry_after_s=parse_retry_after(headers),
        provider=provider,
        model=model,
        upstream_status=status,
        code=code or err_type,
        param=param,
    )


def _not_an_answer(status: int, *, provider: str | None, model: str | None) -> ErrorEnvelope:
    """A redirect (or another non-error, non-success status) from an API: the upstream's
    fault, not the client's, so a 502 that may fail over and is not retried (the same call gets
    the same redirect). Redirects are never followed, so a key is never sent where it points."""
    where = f"{provider}: " if provider else ""
    what = "a redirect" if 300 <= status < 400 else "neither an answer nor an error"
    envelope = ErrorEnvelope.of(
        FailureClass.MALFORMED_RESPONSE,
        f"{where}upstream answered {status} ({what}), which Palyra does not follow; the "
        "provider's base_url in palyra.toml is probably outdated (scheme, host or path)",
        provider=provider,
        model=model,
        upstream_status=status,
        code="upstream_redirect" if 300 <= status < 400 else "upstream_unexpected_status",
    )
    return envelope.model_copy(update={"retryable": False})


def classify_transport_error(
    exc: Exception, *, provider: str | None = None, model: str | None = None
) -> ErrorEnvelope:
    """The envelope for a connection that failed, timed out or broke mid-way."""
    where = f"{provider}: " if provider else ""
    if isinstance(exc, UpstreamTooLarge):
        return ErrorEnvelope.of(
            FailureClass.MALFORMED_RESPONSE,
            f"{where}{exc}",
            provider=provider,
            model=model,
            code="upstream_too_large",
        )
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return ErrorEnvelope.of(
            FailureClass.TIMEOUT,
            f"{where}upstream timed out ({type(exc).__name__})",
            provider=provider,
            model=model,
        )
    if isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError):
        return ErrorEnvelope.of(
            FailureClass.CONNECTION,
            f"{where}upstream closed the connection ({type(exc).__name__}: {exc})",
            provider=provider,
            model=model,
        )
    return ErrorEnvelope.of(
        FailureClass.CONNECTION,
        f"{where}could not reach upstream ({type(exc).__name__}: {exc})",
        provider=provider,
        model=model,
    )


class StatusAndHeaders(Protocol):
    """An upstream answer's status and headers: an ``httpx2.Response`` or an ``UpstreamReply``."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx2.Headers: ...


def raise_for_upstream_status(
    response: StatusAndHeaders, body: bytes, *, provider: str, model: str | None
) -> None:
    """Raise the classified ``PalyraError`` for a non-2xx upstream answer, with the answer's
    headers a client reads (rate limits, request id: the client of a 4xx passed back, or of the
    last failure after failover, gets them as with an answer); 2xx passes."""
    if not 200 <= response.status_code < 300:
        headers = response.headers
        envelope = classify_http_error(
            response.status_code, body, headers, provider=provider, model=model
        )
        wanted = answer_headers(headers.raw)
        if wanted:
            envelope = envelope.model_copy(update={"headers": wanted})
        raise PalyraError(envelope)


def stream_ended_early(
    provider: str | None, model: str | None, *, started: bool, before_any: str, cut: str
) -> PalyraError:
    """A stream whose bytes stopped before its end marker: before the first event nothing was
    received (a connection failure, safe to fail over); after it the answer is incomplete."""
    if not started:
        return PalyraError.of(FailureClass.CONNECTION, before_any, provider=provider, model=model)
    return PalyraError.of(FailureClass.STREAM_INTERRUPTED, cut, provider=provider, model=model)
