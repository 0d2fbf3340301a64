"""Safe built-in tools: the current time in an IANA zone, and arithmetic evaluated over ``ast``.

Nothing here touches the file system, the network or ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from palyra.agents.tools import ToolOutcome
from palyra.model import ToolSpec

WallClock = Callable[[], float]

MAX_EXPRESSION_CHARS = 500
MAX_POWER_EXPONENT = 1000
MAX_MAGNITUDE = 10**100

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


class ArithmeticError_(ValueError):
    """The expression is not plain arithmetic, or its result would be unreasonably large."""


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // % **, parentheses, pi, e and
    sqrt/abs/round/min/max/floor/ceil. Anything else is refused, naming what was found."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ArithmeticError_(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ArithmeticError_(f"not an arithmetic expression: {exc.msg}") from None
    return _value(tree.body)


def _value(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value: int | float = node.value  # type: ignore[assignment]
        return value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_value(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER_EXPONENT:
            raise ArithmeticError_(f"exponents above {MAX_POWER_EXPONENT} are refused")
        try:
            return _checked(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ArithmeticError_("division by zero") from None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        try:
            return _checked(_FUNCTIONS[node.func.id](*(_value(a) for a in node.args)))
        except (TypeError, ValueError) as exc:
            raise ArithmeticError_(f"{node.func.id}(): {exc}") from None
    raise ArithmeticError_(f"{type(node).__name__} is not allowed in arithmetic")


def _checked(value: Any) -> int | float:
    if isinstance(value, complex):
        raise ArithmeticError_("the result is a complex number")
    if abs(value) > MAX_MAGNITUDE:
        raise ArithmeticError_("the result is larger than 1e100")
    return value  # type: ignore[no-any-return]


class CalculateTool:
    """``calculate``: arithmetic on an expression string."""

    allow_name = "calculate"
    spec = ToolSpec(
        name="calculate",
        description="Evaluate an arithmetic expression (+ - * / // % **, sqrt, pi...).",
        parameters={
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    )

    async def call(self, arguments: Mapping[str, Any]) -> ToolOutcome:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            return ToolOutcome('calculate needs "expression" as a string', is_error=True)
        try:
            return ToolOutcome(repr(evaluate(expression)))
        except ArithmeticError_ as exc:
            return ToolOutcome(str(exc), is_error=True)


class CurrentTimeTool:
    """``current_time``: the wall-clock time in an IANA zone (UTC when none is given)."""

    allow_name = "current_time"
    spec = ToolSpec(
        name="current_time",
        description="The current date and time in an IANA time zone, ISO 8601.",
        parameters={
            "type": "object",
            "properties": {"zone": {"type": "string", "description": "e.g. Europe/Berlin"}},
        },
    )

    def __init__(self, wall_clock: WallClock) -> None:
        self._wall = wall_clock

    async def call(self, arguments: Mapping[str, Any]) -> ToolOutcome:
        zone = arguments.get("zone") or "UTC"
        if not isinstance(zone, str):
            return ToolOutcome('current_time needs "zone" as a string', is_error=True)
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return ToolOutcome(
                f'unknown time zone "{zone}"; use an IANA name such as Europe/Berlin',
                is_error=True,
            )
        return ToolOutcome(datetime.fromtimestamp(self._wall(), tz).isoformat())
