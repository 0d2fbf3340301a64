"""Shape checks shared by the OpenAI and Anthropic request parsers: one message style for both."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from palyra.model import FailureClass, PalyraError

# Levels of objects and arrays a request body may hold, the body itself being the first. Far
# above any real schema or tool input, and far enough below what orjson's encoder accepts (254)
# that whatever Palyra builds around a client's value on its way upstream can still be encoded.
MAX_JSON_DEPTH = 128
_ENCODER_DEPTH = 254  # orjson.dumps refuses deeper values ("Recursion limit reached")
_SHOWN_PATH_PARTS = 6


def invalid(message: str, param: str | None = None, code: str | None = None) -> PalyraError:
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


def boolean(value: Any, where: str, default: bool = False) -> bool:
    """A JSON boolean, or ``default`` for a missing or null field; ``"yes"``, ``1`` and the
    like are refused rather than read as true."""
    if value is None:
        return default
    if type(value) is not bool:
        raise invalid(f"{where} must be true or false, got {json_kind(value)}", where)
    return value


def load_json(raw: bytes) -> Any:
    """Decode a request body; malformed JSON, or JSON nested deeper than
    :data:`MAX_JSON_DEPTH`, is a 400 like any other bad field."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if exc.msg == "depth limit exceeded":
            raise too_deep("the request body") from None
        raise invalid(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}"
        ) from None
    if len(raw) > 2 * MAX_JSON_DEPTH:  # shorter bodies cannot open that many levels
        check_depth(data)
    return data


def check_depth(data: Any) -> None:
    """Refuse a decoded body deeper than :data:`MAX_JSON_DEPTH`, naming where it gets deep.

    The test runs at C speed: ``data`` is encoded inside ``254 - MAX_JSON_DEPTH`` arrays, which
    orjson refuses exactly when ``data`` itself is deeper than the limit (measured: +9 us on a
    2.5 KB body, +38 us on 27 KB; a Python walk costs several times that). Only a refused body is
    walked. The
    arrays are this thread's own and the encoding calls no Python code, so nothing else can put
    a body in them meanwhile.
    """
    slot, wrapped = _wrapper()
    slot[0] = data
    try:
        orjson.dumps(wrapped)
    except TypeError:
        path = _deep_path(data, MAX_JSON_DEPTH)
        raise too_deep(_where(path or [])) from None
    finally:
        slot[0] = None


_wrappers = threading.local()


def _wrapper() -> tuple[list[Any], list[Any]]:
    """This thread's ``254 - MAX_JSON_DEPTH`` nested arrays and the innermost one (the slot the
    body goes in), built once: building them per request cost three times the encoding."""
    found: tuple[list[Any], list[Any]] | None = getattr(_wrappers, "arrays", None)
    if found is None:
        slot: list[Any] = [None]
        outer = slot
        for _ in range(_ENCODER_DEPTH - MAX_JSON_DEPTH - 1):
            outer = [outer]
        found = _wrappers.arrays = (slot, outer)
    return found


def too_deep(where: str) -> PalyraError:
    return invalid(
        f"{where} nests objects and arrays more than {MAX_JSON_DEPTH} levels deep (counting the "
        f"request body as the first); Palyra accepts at most {MAX_JSON_DEPTH}: flatten it",
        where,
        code="nesting_too_deep",
    )


def _deep_path(node: Any, budget: int) -> list[str | int] | None:
    """The keys down to a container ``budget`` levels below ``node`` (innermost first), if any."""
    if type(node) is dict:
        children: Any = node.items()
    elif type(node) is list:
        children = enumerate(node)
    else:
        return None
    if budget == 0:
        return []
    for key, child in children:
        if type(child) is dict or type(child) is list:
            found = _deep_path(child, budget - 1)
            if found is not None:
                found.append(key)
                return found
    return None


def _where(reversed_path: list[str | int]) -> str:
    """``tools[0].function.parameters...`` for a path given innermost first, its start shown."""
    parts = reversed_path[::-1]
    text = ""
    for part in parts[:_SHOWN_PATH_PARTS]:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    if not text:
        return "the request body"
    return text + ("..." if len(parts) > _SHOWN_PATH_PARTS else "")
