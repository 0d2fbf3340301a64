"""The dialect-neutral view of a chat request and the reply the fake derives from it (pure).

Reply rules, shared by the OpenAI and Anthropic endpoints:

* **Tokens** are runs of non-whitespace. Input tokens: the words of the system prompt, every text
  part, tool-call argument and tool result, plus one per image or file. Output tokens: the words
  of the reply plus, per tool call, the words of its name and argument JSON.
* **Tool calls.** When tools are offered and tool choice is not "none": scripted calls
  (``FakeUpstream.script_tool_calls``) win; otherwise, if the last message is from the user and
  its text contains the word ``call`` followed by an offered tool's name (``call get_weather``,
  any case, backticks allowed), that tool is called. A forced choice ("required"/"any" or a
  named tool) calls the first/named tool without a trigger. Arguments fill the tool's JSON
  schema (strings get the user text minus the trigger, integers its word count) and every
  ``{...}`` JSON object in the text overrides them key by key.
* **Thinking.** With thinking on, the reply starts with one thinking block saying how many words
  the user wrote (its words count as output), signed (see ``anthropic_messages``).
* **Text.** After tool results: ``Tool <name> returned: <content>`` per result. Otherwise
  ``You said: <last user text>``. JSON object mode wraps it as ``{"reply": ...}``; a JSON schema
  is filled in. Then it is cut at the first stop sequence and to ``max_tokens`` words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from palyra.providers.deterministic import fill_schema, json_objects_in

Finish = Literal["stop", "length", "tool_calls", "stop_sequence"]

_WORD = re.compile(r"\S+")
_PIECE = re.compile(r"^\s+|\S+\s*")
_TRIGGER = re.compile(r"(?i)\bcall\s+`?([A-Za-z0-9_.-]+)`?")


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def split_words(text: str) -> list[str]:
    """Words with their trailing whitespace; joined they give back ``text``."""
    return _PIECE.findall(text)


@dataclass(frozen=True, slots=True)
class ToolDef:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    name: str
    text: str
    is_error: bool = False


@dataclass(slots=True)
class Conversation:
    """What a validated request says, in the terms the reply rules need."""

    model: str
    input_tokens: int = 0
    last_role: str = "user"
    last_user_text: str = ""
    tool_results: list[ToolResult] = field(default_factory=list)
    tools: list[ToolDef] = field(default_factory=list)
    tool_choice: str = "auto"
    """"auto", "none", "required" or the name of a forced tool."""
    parallel_tool_calls: bool = True
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    json_schema: Mapping[str, Any] | None = None
    json_object: bool = False
    thinking: bool = False
    """The request turned extended thinking on (Anthropic ``thinking``)."""

    @property
    def wants_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """A tool call the next tool-offering chat request returns, whatever its text says."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return orjson.dumps(dict(self.arguments)).decode()


@dataclass(frozen=True, slots=True)
class PlannedCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    calls: list[PlannedCall]
    finish: Finish
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    thinking: str | None = None
    cache_creation_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    """Of ``cache_creation_tokens``, those written to the one-hour cache (the rest: 5 minutes)."""


def _triggered(conv: Conversation) -> list[ToolDef]:
    by_name = {t.name: t for t in conv.tools}
    if conv.tool_choice in by_name:
        return [by_name[conv.tool_choice]]
    chosen: list[ToolDef] = []
    if conv.last_role == "user":
        for name in _TRIGGER.findall(conv.last_user_text):
            if name in by_name and by_name[name] not in chosen:
                chosen.append(by_name[name])
    if not chosen and conv.tool_choice == "required":
        chosen = [conv.tools[0]]
    return chosen[:1] if not conv.parallel_tool_calls else chosen


def _arguments(tool: ToolDef, text: str) -> str:
    explicit, rest = json_objects_in(text)
    filler = " ".join(_TRIGGER.sub(" ", rest).split()).strip(" .,;:!?")
    number = count_words(text)
    filled = fill_schema(dict(tool.schema), filler, number)
    args: dict[str, Any] = filled if isinstance(filled, dict) else {}
    props = tool.schema.get("properties")
    declared = set(props) if isinstance(props, dict) and props else None
    for obj in explicit:
        args.update({k: v for k, v in obj.items() if declared is None or k in declared})
    return orjson.dumps(args).decode()


def _text(conv: Conversation) -> str:
    if conv.last_role == "tool" and conv.tool_results:
        lines = [
            f"Tool {r.name} {'failed' if r.is_error else 'returned'}: {r.text}"
            for r in conv.tool_results
        ]
        reply = "\n".join(lines)
    else:
        said = conv.last_user_text.strip()
        reply = f"You said: {said}" if said else "You said nothing."
    if conv.json_schema is not None:
        return orjson.dumps(fill_schema(dict(conv.json_schema), reply, count_words(reply))).decode()
    if conv.json_object:
        return orjson.dumps({"reply": reply}).decode()
    return reply


def _limit(text: str, conv: Conversation) -> tuple[str, Finish, str | None]:
    hits = [(text.find(s), s) for s in conv.stop if s and s in text]
    if hits:
        at, seq = min(hits)
        return text[:at], "stop_sequence", seq
    if conv.max_tokens is not None and count_words(text) > conv.max_tokens:
        pieces = [p for p in split_words(text) if p.strip()]
        return "".join(pieces[: conv.max_tokens]).rstrip(), "length", None
    return text, "stop", None


def plan_reply(
    conv: Conversation,
    *,
    scripted: list[ScriptedToolCall] | None,
    call_id: Callable[[int], str],
    cached_tokens: int = 0,
) -> Reply:
    """The answer to ``conv`` by the rules in the module docstring."""
    calls: list[PlannedCall] = []
    if conv.wants_tools:
        if scripted:
            calls = [
                PlannedCall(call_id(i), s.name, s.arguments_json()) for i, s in enumerate(scripted)
            ]
        else:
            calls = [
                PlannedCall(call_id(i), t.name, _arguments(t, conv.last_user_text))
                for i, t in enumerate(_triggered(conv))
            ]
    text, finish, seq = ("", "tool_calls", None) if calls else _limit(_text(conv), conv)
    output = count_words(text) + sum(count_words(c.name) + count_words(c.arguments) for c in calls)
    thinking = None
    if conv.thinking:
        thinking = f"The user wrote {count_words(conv.last_user_text)} words; I answer plainly."
        output += count_words(thinking)
    return Reply(
        text=text,
        calls=calls,
        finish=finish,
        stop_sequence=seq,
        input_tokens=conv.input_tokens,
        output_tokens=output,
        cached_tokens=min(cached_tokens, conv.input_tokens),
        thinking=thinking,
    )
