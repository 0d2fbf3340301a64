"""Shape checks shared by the OpenAI and Anthropic request parsers: one message style for both."""

from __future__ import annotations

from typing import Any

from palyra.model import FailureClass, PalyraError


def invalid(
    message: str, param: str | None = None, code: str = "invalid_request_error"
) -> PalyraError:
    """A 400 ``invalid_request`` naming the offending field."""
    return PalyraError.of(FailureClass.INVALID_REQUEST, message, param=param, code=code)


def json_kind(value: Any) -> str:
    """A JSON value's type as a user reads it: "an object", "a string", "null", ..."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a JSON object, got {json_kind(value)}", where)
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{where} must be a string, got {json_kind(value)}", where)
    return value
