"""One test per row of the README's "Field mapping" table (the request parameters): a client
body of one API, parsed by our edge and built for an upstream of the other (or the same) API,
gives the upstream body the row promises, or the 400 naming the field."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from palyra.daemon.surfaces.anthropic.messages_format import parse_messages_request
from palyra.daemon.surfaces.openai.chat_format import parse_chat_request
from palyra.model import FailureClass, PalyraError
from palyra.providers.anthropic import build_anthropic_messages_payload
from palyra.providers.openai import build_openai_chat_payload

README = Path(__file__).resolve().parents[2] / "README.md"

WEATHER_OPENAI = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
WEATHER_ANTHROPIC = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
CITED = {"type": "text", "text": "a", "citations": [{"type": "char_location", "cited_text": "a"}]}
SEARCH = {"type": "search_result", "source": "s", "title": "t", "content": []}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
SERVER_CALL = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}


def openai_body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def anthropic_body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


Route = Callable[[dict[str, Any]], dict[str, Any]]


def openai_to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    return build_anthropic_messages_payload(parse_chat_request(body).request)


def anthropic_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    return build_openai_chat_payload(parse_messages_request(body))


def openai_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    return build_openai_chat_payload(parse_chat_request(body).request)


def anthropic_to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    return build_anthropic_messages_payload(parse_messages_request(body))


@dataclass(frozen=True)
class Case:
    """``body`` through ``route``: the upstream body has ``sent`` (a value of None: the key is
    absent), or the request is refused naming ``refused``."""

    route: Route
    body: dict[str, Any]
    sent: dict[str, Any] | None = None
    refused: str | None = None


O2A, A2O, O2O, A2A = (
    openai_to_anthropic,
    anthropic_to_openai,
    openai_to_openai,
    anthropic_to_anthropic,
)

ROWS: dict[str, list[Case]] = {
    "reasoning_effort": [
        Case(O2O, openai_body(reasoning_effort="low"), {"reasoning_effort": "low"}),
        Case(
            O2A,
            openai_body(reasoning_effort="high", max_completion_tokens=20000),
            {"thinking": {"type": "enabled", "budget_tokens": 16384}},
        ),
        Case(
            O2A,
            openai_body(reasoning_effort="high", max_completion_tokens=4000),
            {"thinking": {"type": "enabled", "budget_tokens": 3999}},
        ),
        Case(O2A, openai_body(reasoning_effort="none"), {"thinking": {"type": "disabled"}}),
    ],
    "seed": [
        Case(O2O, openai_body(seed=7), {"seed": 7}),
        Case(O2A, openai_body(seed=7), {"seed": None}),
    ],
    "presence_penalty": [
        Case(
            O2O,
            openai_body(presence_penalty=0.5, frequency_penalty=-0.5),
            {"presence_penalty": 0.5, "frequency_penalty": -0.5},
        ),
        Case(
            O2A,
            openai_body(presence_penalty=0.5, frequency_penalty=-0.5),
            {"presence_penalty": None, "frequency_penalty": None},
        ),
    ],
    "logit_bias": [
        Case(O2O, openai_body(logit_bias={"50256": -100}), {"logit_bias": {"50256": -100}}),
        Case(O2A, openai_body(logit_bias={"50256": -100}), refused="logit_bias"),
    ],
    "logprobs": [
        Case(
            O2O,
            openai_body(logprobs=True, top_logprobs=2),
            {"logprobs": True, "top_logprobs": 2},
        ),
        Case(O2A, openai_body(logprobs=True, top_logprobs=2), refused="logprobs"),
        Case(O2A, openai_body(logprobs=False), {"logprobs": None}),
    ],
    "n": [
        Case(O2O, openai_body(n=1), {"n": 1}),
        Case(O2O, openai_body(n=2), {"n": 2}),
        Case(O2A, openai_body(n=2), refused="n"),
        Case(O2A, openai_body(n=1), {"n": None}),
    ],
    "service_tier": [
        Case(O2O, openai_body(service_tier="flex"), {"service_tier": "flex"}),
        Case(A2A, anthropic_body(service_tier="standard_only"), {"service_tier": "standard_only"}),
        Case(O2A, openai_body(service_tier="auto"), {"service_tier": "auto"}),
        Case(O2A, openai_body(service_tier="default"), {"service_tier": "standard_only"}),
        Case(O2A, openai_body(service_tier="priority"), {"service_tier": None}),
        Case(A2O, anthropic_body(service_tier="standard_only"), {"service_tier": "default"}),
        Case(A2O, anthropic_body(service_tier="auto"), {"service_tier": "auto"}),
    ],
    "user": [
        Case(O2O, openai_body(user="u1"), {"user": "u1"}),
        Case(A2A, anthropic_body(metadata={"user_id": "u1"}), {"metadata": {"user_id": "u1"}}),
        Case(O2A, openai_body(user="u1"), {"metadata": {"user_id": "u1"}}),
        Case(O2A, openai_body(user="u" * 513), refused="user"),
        Case(A2O, anthropic_body(metadata={"user_id": "u1"}), {"user": "u1"}),
    ],
    "metadata": [
        Case(O2O, openai_body(metadata={"team": "a"}), {"metadata": {"team": "a"}}),
        Case(O2A, openai_body(metadata={"team": "a"}), {"metadata": None}),
    ],
    "store": [
        Case(O2O, openai_body(store=True), {"store": True}),
        Case(O2A, openai_body(store=True), {"store": None}),
    ],
    "prediction": [
        Case(
            O2O,
            openai_body(prediction={"type": "content", "content": "x = 1"}),
            {"prediction": {"type": "content", "content": "x = 1"}},
        ),
        Case(
            O2A, openai_body(prediction={"type": "content", "content": "x"}), {"prediction": None}
        ),
    ],
    "max_completion_tokens": [
        Case(O2O, openai_body(max_completion_tokens=50), {"max_completion_tokens": 50}),
        Case(O2O, openai_body(max_tokens=50), {"max_completion_tokens": 50}),
        Case(O2A, openai_body(max_completion_tokens=50), {"max_tokens": 50}),
        Case(O2A, openai_body(max_tokens=50), {"max_tokens": 50}),
        Case(A2O, anthropic_body(max_tokens=50), {"max_completion_tokens": 50}),
    ],
    "stop": [
        Case(O2O, openai_body(stop=["a", "b"]), {"stop": ["a", "b"]}),
        Case(O2O, openai_body(stop="a"), {"stop": ["a"]}),
        Case(A2A, anthropic_body(stop_sequences=["a"]), {"stop_sequences": ["a"]}),
        Case(O2A, openai_body(stop="END"), {"stop_sequences": ["END"]}),
        Case(A2O, anthropic_body(stop_sequences=["a", "b"]), {"stop": ["a", "b"]}),
    ],
    "parallel_tool_calls": [
        Case(
            O2O,
            openai_body(tools=[WEATHER_OPENAI], parallel_tool_calls=False),
            {"parallel_tool_calls": False},
        ),
        Case(
            O2A,
            openai_body(tools=[WEATHER_OPENAI], parallel_tool_calls=False),
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        ),
        Case(
            A2O,
            anthropic_body(
                tools=[WEATHER_ANTHROPIC],
                tool_choice={"type": "auto", "disable_parallel_tool_use": True},
            ),
            {"parallel_tool_calls": False, "tool_choice": "auto"},
        ),
    ],
    "tool_choice": [
        Case(
            O2O,
            openai_body(
                tools=[WEATHER_OPENAI],
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
            ),
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        Case(
            O2A,
            openai_body(tools=[WEATHER_OPENAI], tool_choice="required"),
            {"tool_choice": {"type": "any"}},
        ),
        Case(
            O2A,
            openai_body(
                tools=[WEATHER_OPENAI],
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
            ),
            {"tool_choice": {"type": "tool", "name": "get_weather"}},
        ),
        Case(
            A2O,
            anthropic_body(tools=[WEATHER_ANTHROPIC], tool_choice={"type": "any"}),
            {"tool_choice": "required"},
        ),
        Case(
            A2O,
            anthropic_body(
                tools=[WEATHER_ANTHROPIC], tool_choice={"type": "tool", "name": "get_weather"}
            ),
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
    ],
    "input_examples": [
        Case(
            A2A,
            anthropic_body(tools=[{**WEATHER_ANTHROPIC, "input_examples": [{}], "x_new": 1}]),
            {"tools": [{**WEATHER_ANTHROPIC, "input_examples": [{}], "x_new": 1}]},
        ),
        Case(
            A2A,
            anthropic_body(
                messages=[{"role": "user", "content": [{**CITED, "cache_control": {"t": 1}}]}]
            ),
            {"messages": [{"role": "user", "content": [{**CITED, "cache_control": {"t": 1}}]}]},
        ),
        Case(
            O2O,
            openai_body(
                tools=[{**WEATHER_OPENAI, "x_tool": 1}],
                messages=[{"role": "user", "content": [{"type": "text", "text": "a", "x": 2}]}],
            ),
            {
                "tools": [{**WEATHER_OPENAI, "x_tool": 1}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "a", "x": 2}]}],
            },
        ),
        Case(
            A2O,
            anthropic_body(
                tools=[{**WEATHER_ANTHROPIC, "input_examples": [{}]}],
                messages=[{"role": "user", "content": [CITED]}],
            ),
            {
                "tools": [WEATHER_OPENAI],
                "messages": [{"role": "user", "content": "a"}],
            },
        ),
        Case(
            O2A,
            openai_body(
                tools=[{**WEATHER_OPENAI, "x_tool": 1}],
                messages=[{"role": "user", "content": [{"type": "text", "text": "a", "x": 2}]}],
            ),
            {
                "tools": [WEATHER_ANTHROPIC],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}],
            },
        ),
    ],
    "search_result": [
        Case(
            A2A,
            anthropic_body(messages=[{"role": "user", "content": [SEARCH]}]),
            {"messages": [{"role": "user", "content": [SEARCH]}]},
        ),
        Case(
            O2O,
            openai_body(messages=[{"role": "user", "content": [AUDIO]}]),
            {"messages": [{"role": "user", "content": [AUDIO]}]},
        ),
        Case(
            A2O,
            anthropic_body(messages=[{"role": "user", "content": [SEARCH]}]),
            refused="messages",
        ),
        Case(O2A, openai_body(messages=[{"role": "user", "content": [AUDIO]}]), refused="messages"),
        Case(
            A2O,
            anthropic_body(
                messages=[
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": [SERVER_CALL, {"type": "text", "text": "a"}]},
                    {"role": "user", "content": "more"},
                ]
            ),
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "more"},
                ]
            },
        ),
    ],
    "web_search_20250305": [
        Case(A2A, anthropic_body(tools=[WEB_SEARCH]), {"tools": [WEB_SEARCH]}),
        Case(A2O, anthropic_body(tools=[WEB_SEARCH]), refused="tools[0].type"),
    ],
}


def readme_rows() -> dict[str, str]:
    """The Field mapping table's rows by the first field each names."""
    text = README.read_text()
    table = text[text.index("### Field mapping") :]
    rows: dict[str, str] = {}
    for line in table.splitlines()[1:]:
        if line.startswith("### "):
            break
        match = re.match(r"\| `([^`]+)`", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_every_tested_field_has_its_readme_row() -> None:
    missing = sorted(set(ROWS) - set(readme_rows()))
    assert missing == [], f"README Field mapping has no row for {missing}"


CASES = [(field, i, case) for field, cases in ROWS.items() for i, case in enumerate(cases)]


@pytest.mark.parametrize(
    ("field", "case"),
    [(f, c) for f, _, c in CASES],
    ids=[f"{f}-{c.route.__name__}-{i}" for f, i, c in CASES],
)
def test_field_mapping_row(field: str, case: Case) -> None:
    if case.refused is not None:
        with pytest.raises(PalyraError) as info:
            case.route(case.body)
        assert info.value.failure_class in (
            FailureClass.UNSUPPORTED_CAPABILITY,
            FailureClass.INVALID_REQUEST,
        )
        assert info.value.envelope.param == case.refused
        assert case.refused in info.value.envelope.message
        return
    payload = case.route(case.body)
    assert case.sent is not None
    for key, value in case.sent.items():
        if value is None:
            assert key not in payload, f"{field}: {key} should have been dropped"
        else:
            assert payload.get(key) == value, f"{field}: {key}"
