"""Built-in tools: arithmetic over ``ast`` (never ``eval``) and the time in an IANA zone."""

from __future__ import annotations

from pathlib import Path

import pytest

from palyra.agents.builtin_tools import ArithmeticError_, CalculateTool, CurrentTimeTool, evaluate
from palyra.agents.tools import ToolOutcome, ToolRegistry, allowed, model_name


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("6*7+1", 43),
        ("2**10", 1024),
        ("-(3 - 5) / 4", 0.5),
        ("sqrt(16) + max(1, 2)", 6.0),
        ("7 // 2 % 3", 0),
        ("round(pi, 2)", 3.14),
    ],
)
def test_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('true')", "Call is not allowed"),
        ("open('/etc/passwd')", "Call is not allowed"),
        ("(1).__class__", "Attribute is not allowed"),
        ("x + 1", "Name is not allowed"),
        ("9 ** 9 ** 9", "exponents above 1000 are refused"),
        ("10 ** 200", "larger than 1e100"),
        ("1 / 0", "division by zero"),
        ("'a' * 3", "Constant is not allowed"),
        ("1 +", "not an arithmetic expression"),
        ("(-1) ** 0.5", "complex"),
    ],
)
def test_anything_but_arithmetic_is_refused_naming_it(expression: str, problem: str) -> None:
    with pytest.raises(ArithmeticError_) as caught:
        evaluate(expression)
    assert problem in str(caught.value)


async def test_calculate_reports_errors_to_the_model() -> None:
    tool = CalculateTool()
    assert await tool.call({"expression": "2+2"}) == ToolOutcome("4")
    assert await tool.call({"expression": "1/0"}) == ToolOutcome("division by zero", True)
    assert (await tool.call({})).is_error


async def test_current_time_in_a_named_zone_from_the_injected_clock() -> None:
    tool = CurrentTimeTool(lambda: 1_800_000_000.0)  # 2027-01-15T08:00:00Z
    assert await tool.call({"zone": "Europe/Berlin"}) == ToolOutcome("2027-01-15T09:00:00+01:00")
    assert await tool.call({}) == ToolOutcome("2027-01-15T08:00:00+00:00")
    bad = await tool.call({"zone": "Mars/Olympus"})
    assert bad.is_error and 'unknown time zone "Mars/Olympus"' in bad.content


def test_allowlist_names_and_model_names() -> None:
    assert model_name("files.read") == "files__read"
    assert allowed("files.read", ["files.*"]) and not allowed("filesx.read", ["files.*"])
    assert allowed("calculate", ["calculate"]) and not allowed("calculate", ["current_time"])
    registry = ToolRegistry([CalculateTool(), CurrentTimeTool(lambda: 0.0)])
    assert [t.allow_name for t in registry.pick(["current_time"])] == ["current_time"]
    with pytest.raises(ValueError, match='"calculate" is already registered'):
        registry.add(CalculateTool())


def test_tools_installed_under_the_palyra_tools_entry_point_group_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shout_tool.py").write_text(
        "from palyra.agents.tools import ToolOutcome\n"
        "from palyra.model import ToolSpec\n"
        "class Shout:\n"
        "    allow_name = 'shout'\n"
        "    spec = ToolSpec(name='shout')\n"
        "    async def call(self, arguments):\n"
        "        return ToolOutcome(str(arguments.get('text', '')).upper())\n"
        "broken = 42\n"
    )
    dist = tmp_path / "shout_tool-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-tool\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[palyra.tools]\nshout = shout_tool:Shout\nbroken = shout_tool:broken\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ToolRegistry()
    problems = registry.load_entry_points()
    assert registry.names() == ["shout"]
    assert problems == [
        'tool entry point "broken" (shout_tool:broken): TypeError: shout_tool:broken is not a '
        "palyra tool (allow_name, spec, call)"
    ]
