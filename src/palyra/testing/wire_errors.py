"""Errors in each provider's wire shape, so clients and SDKs classify them as they would live."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import orjson


class Dialect(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {429: "requests"}


@dataclass(slots=True)
class WireError(Exception):
    """An HTTP error answer; ``type`` defaults to the provider's type for the status."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"

    def body(self, dialect: Dialect) -> bytes:
        if dialect is Dialect.ANTHROPIC:
            kind = self.type or _ANTHROPIC_TYPES.get(
                self.status, "api_error" if self.status >= 500 else "invalid_request_error"
            )
            return orjson.dumps({"type": "error", "error": {"type": kind, "message": self.message}})
        kind = self.type or _OPENAI_TYPES.get(
            self.status, "server_error" if self.status >= 500 else "invalid_request_error"
        )
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": kind,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )


def invalid(message: str, param: str | None = None, code: str | None = None) -> WireError:
    return WireError(400, message, param=param, code=code)


def invalid_key(dialect: Dialect, present: bool) -> WireError:
    if dialect is Dialect.ANTHROPIC:
        return WireError(401, "invalid x-api-key" if present else "x-api-key header is required")
    if not present:
        return WireError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    return WireError(401, "Incorrect API key provided.", code="invalid_api_key")


def rate_limited(retry_after_s: float, why: str) -> WireError:
    headers = {
        "retry-after": str(max(0, math.ceil(retry_after_s))),
        "retry-after-ms": str(max(0, round(retry_after_s * 1000))),
    }
    return WireError(
        429, f"Rate limit reached: {why}.", code="rate_limit_exceeded", headers=headers
    )


def server_error(status: int) -> WireError:
    if status == 529:
        return WireError(529, "Overloaded")
    return WireError(status, "The server had an error while processing your request.")


def context_length(dialect: Dialect, tokens: int, window: int) -> WireError:
    if dialect is Dialect.ANTHROPIC:
        return WireError(400, f"prompt is too long: {tokens} tokens > {window} maximum")
    return WireError(
        400,
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages.",
        param="messages",
        code="context_length_exceeded",
    )
