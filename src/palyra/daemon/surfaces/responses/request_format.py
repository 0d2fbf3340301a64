"""An OpenAI ``POST /v1/responses`` body -> this turn's neutral messages and request fields.

Pure: no store, no clock. ``previous_response_id`` is only read here; the handler fetches the
stored chain and hands its messages to :meth:`ResponsesCall.chat_request`, so a chained request
is validated as one whole conversation. Every documented field is mapped, dropped by a rule the
README states (hints that change no answer), or refused with a 400 naming it and saying why (a
gateway that accepted and ignored it would change what the client gets without telling it).
The ``input`` items themselves are read by :mod:`.input_items`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from palyra.daemon.surfaces.responses.input_items import first_error, parse_input
from palyra.daemon.surfaces.responses.reasoning_items import reasoning_config
from palyra.daemon.surfaces.wire_checks import boolean, invalid, json_kind, obj, string
from palyra.model import (
    ChatRequest,
    Message,
    NamedToolChoice,
    ResponseFormat,
    Role,
    ToolChoice,
    ToolSpec,
)
from palyra.model.extensions import OPENAI_RESPONSES, Extensions
from palyra.providers.openai.responses_response import RESPONSE_FIELDS

# Fields with no neutral counterpart yet: refused, so the client knows it did not take effect.
_REFUSED: dict[str, str] = {
    "background": "Palyra answers in the foreground only; send background=false or omit it",
    "conversation": "Palyra keeps no conversation objects; chain turns with previous_response_id",
    "prompt": "prompt templates live on OpenAI's platform; send the input itself",
    "context_management": "Palyra does not compact context; omit context_management",
}
# Fields that are harmless at their default value, refused otherwise.
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
LOGPROBS_INCLUDE = "message.output_text.logprobs"
_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "store",
        "previous_response_id",
        "metadata",
        "user",
        "service_tier",
        "top_logprobs",
    }
)


@dataclass(frozen=True)
class ResponsesCall:
    """One parsed Responses request: this turn's input, the neutral fields, and what the
    Response object must repeat back (``echo``)."""

    model: str
    input: list[Message]
    instructions: str | None
    fields: dict[str, Any]
    echo: dict[str, Any]
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    builtin_tools: list[str] = field(default_factory=list)
    passed_items: list[tuple[str, str]] = field(default_factory=list)
    """(where, type) of the input items kept as sent, for a Responses upstream."""
    raw_input: Any = None
    """``input`` as the client sent it (stored for ``GET .../input_items``)."""

    @property
    def extensions(self) -> Extensions | None:
        """The fields only a Responses upstream takes (built-in tools among them)."""
        found = self.fields.get("extensions")
        return found if isinstance(found, Extensions) else None

    def chat_request(self, history: list[Message] | None = None) -> ChatRequest:
        """The neutral request: instructions, then the stored chain, then this turn's input."""
        messages: list[Message] = []
        if self.instructions:
            messages.append(Message.text(Role.DEVELOPER, self.instructions))
        messages += history or []
        messages += self.input
        if not any(m.role is not Role.DEVELOPER for m in messages):
            raise invalid("input must hold at least one item (a message or a tool output)", "input")
        try:
            return ChatRequest.model_validate(
                {"model": self.model, "messages": messages, "stream": self.stream, **self.fields}
            )
        except (ValidationError, ValueError) as exc:
            raise invalid(first_error(exc)) from exc


def _tools(raw: Any) -> tuple[list[ToolSpec], list[dict[str, Any]], list[dict[str, Any]]]:
    """Function tools (neutral and as echoed back) and the built-in tools asked for, as sent."""
    if raw is None:
        return [], [], []
    if not isinstance(raw, list):
        raise invalid(f"tools must be an array, got {json_kind(raw)}", "tools")
    specs: list[ToolSpec] = []
    echoed: list[dict[str, Any]] = []
    builtin: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"tools[{i}]"
        tool = obj(item, where)
        kind = tool.get("type")
        if kind != "function":
            if isinstance(kind, str) and kind:
                # A built-in tool (web_search, mcp, ...) or one newer than Palyra: for a
                # Responses upstream, as sent.
                builtin.append(tool)
                continue
            raise invalid(
                f"{where}.type is {kind!r}; use 'function' or a built-in tool's type",
                f"{where}.type",
            )
        spec: dict[str, Any] = {"name": tool.get("name")}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                spec[key] = tool[key]
        try:
            specs.append(ToolSpec.model_validate(spec))
        except ValidationError as exc:
            raise invalid(f"{where}: {first_error(exc)}", where) from exc
        echoed.append(
            {
                "type": "function",
                "name": tool.get("name"),
                "description": tool.get("description"),
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict"),
            }
        )
    return specs, echoed, builtin


def _tool_choice(raw: Any, passed: dict[str, Any]) -> ToolChoice | None:
    """The neutral tool choice; another kind (``allowed_tools``, a built-in tool, ``mcp``,
    ``custom``) goes into ``passed``, for a Responses upstream only."""
    if raw is None or raw in ("auto", "none", "required"):
        return raw  # type: ignore[no-any-return]
    if isinstance(raw, dict) and raw.get("type") == "function":
        return NamedToolChoice(name=string(raw.get("name"), "tool_choice.name"))
    if isinstance(raw, dict) and isinstance(raw.get("type"), str) and raw["type"]:
        passed["tool_choice"] = raw
        return None
    raise invalid(
        "tool_choice must be 'auto', 'none', 'required', "
        '{"type": "function", "name": ...} or another tool choice object with a type',
        "tool_choice",
    )


def _text_format(raw: Any) -> tuple[ResponseFormat | None, dict[str, Any]]:
    """``text.format`` as a neutral response format, and the ``text`` object echoed back."""
    if raw is None:
        return None, {"format": {"type": "text"}}
    text = obj(raw, "text")
    fmt = text.get("format")
    if fmt is None:
        return None, {"format": {"type": "text"}}
    fmt = obj(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None, {"format": {"type": "text"}}
    if kind == "json_object":
        return ResponseFormat(type="json_object"), {"format": {"type": "json_object"}}
    if kind == "json_schema":
        name = string(fmt.get("name"), "text.format.name")
        schema = obj(fmt.get("schema"), "text.format.schema")
        echoed = {"format": {k: v for k, v in fmt.items() if v is not None}}
        strict = fmt.get("strict")
        neutral = ResponseFormat(
            type="json_schema",
            schema_name=name,
            json_schema=schema,
            strict=None if strict is None else boolean(strict, "text.format.strict"),
        )
        return neutral, echoed
    raise invalid(
        f"text.format.type is {kind!r}; use 'text', 'json_object' or 'json_schema'",
        "text.format.type",
    )


# Fields only OpenAI's Responses API acts on: sent as given to a model served by it (as
# extensions owned by this format), refused with a 400 before any other model is called.
_PASS_THROUGH = frozenset(
    {
        "truncation",
        "max_tool_calls",
        "prompt_cache_key",
        "safety_identifier",
        "prompt_cache_retention",
    }
)
_SURFACE_ONLY = frozenset({"stream_options", "include"})


def _check_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Refuse what no upstream can serve; the fields left for a Responses upstream alone."""
    passed: dict[str, Any] = {}
    for key, value in body.items():
        if key in _KNOWN or key in _SURFACE_ONLY:
            continue
        if key in _REFUSED:
            if value not in (None, False):
                raise invalid(f"{key}: {_REFUSED[key]}", key)
            continue
        passed[key] = value
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(v, str) for v in include):
        raise invalid("include must be an array of strings", "include")
    return passed


def _logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """``include: ["message.output_text.logprobs"]`` and ``top_logprobs`` as the neutral
    ``logprobs`` / ``top_logprobs`` (asking for alternatives asks for the logprobs too)."""
    top = body.get("top_logprobs")
    if top is not None and (type(top) is not int or not 0 <= top <= 20):
        raise invalid(f"top_logprobs must be an integer from 0 to 20, got {top!r}", "top_logprobs")
    wanted = LOGPROBS_INCLUDE in (body.get("include") or []) or bool(top)
    if not wanted:
        return {}
    return {"logprobs": True, "top_logprobs": top}


def _service_tier(raw: Any) -> str | None:
    if raw is not None and raw not in SERVICE_TIERS:
        raise invalid(
            f"service_tier is {raw!r}; use one of {', '.join(SERVICE_TIERS)}", "service_tier"
        )
    return raw  # type: ignore[no-any-return]


def parse_responses_request(data: Any, headers: dict[str, str] | None = None) -> ResponsesCall:
    """A Responses body as a :class:`ResponsesCall`, or a 400 naming the field; ``headers`` are
    the client's headers an upstream may be given (see ``palyra.model.forwarding``)."""
    body = obj(data, "the request body")
    passed = _check_fields(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model must be a non-empty string naming a configured model", "model")
    if "input" not in body and body.get("previous_response_id") is None:
        raise invalid("input is required (a string, or an array of input items)", "input")
    messages, passed_items = parse_input(body.get("input", []))
    instructions = body.get("instructions")
    if instructions is not None:
        instructions = string(instructions, "instructions")
    specs, echoed_tools, builtin = _tools(body.get("tools"))
    if builtin:
        passed["tools"] = builtin
    response_format, echoed_text = _text_format(body.get("text"))
    reasoning, neutral_reasoning = reasoning_config(body.get("reasoning"))
    store = boolean(body.get("store"), "store", default=True)
    stream = boolean(body.get("stream"), "stream")
    previous = body.get("previous_response_id")
    if previous is not None:
        previous = string(previous, "previous_response_id")
    metadata = body.get("metadata")
    if metadata is not None:
        obj(metadata, "metadata")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        parallel = boolean(parallel, "parallel_tool_calls")
    tool_choice = body.get("tool_choice")
    fields: dict[str, Any] = {
        "tool_choice": _tool_choice(tool_choice, passed),
        "parallel_tool_calls": parallel,
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "response_format": response_format,
        "reasoning": neutral_reasoning,
        "user": body.get("user"),
        "service_tier": _service_tier(body.get("service_tier")),
        **_logprobs(body),
    }
    if specs:
        fields["tools"] = specs
    if metadata:
        fields["metadata"] = metadata
    if headers:
        fields["headers"] = headers
    text = body.get("text")
    if isinstance(text, dict) and text.get("verbosity") is not None:
        passed["text"] = {"verbosity": text["verbosity"]}
    # Other include values ask a Responses upstream for more of its items (sources, results,
    # outputs): sent to one as given; no other model has such items, so they are dropped there.
    more = [v for v in body.get("include") or [] if v != LOGPROBS_INCLUDE]
    if passed or more:
        fields["extensions"] = Extensions(
            owner=OPENAI_RESPONSES,
            fields={**passed, "include": more} if more else passed,
            mapped=frozenset({"include"}) if more else frozenset(),
        )
    echo: dict[str, Any] = {
        "instructions": instructions,
        "tools": echoed_tools + builtin,
        "tool_choice": tool_choice if tool_choice is not None else "auto",
        "parallel_tool_calls": parallel if parallel is not None else True,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": metadata or {},
        "text": echoed_text,
        "reasoning": reasoning,
        "previous_response_id": previous,
        "store": store,
        "truncation": "disabled",
    }
    for key, value in passed.items():  # a Responses upstream's own options, echoed as sent
        if key == "text":
            echo["text"] = {**echoed_text, **value}
        elif key in RESPONSE_FIELDS and key != "tools":
            echo[key] = value
    if body.get("user") is not None:
        echo["user"] = body["user"]
    if fields["service_tier"] is not None:
        echo["service_tier"] = fields["service_tier"]
    if body.get("top_logprobs") is not None:
        echo["top_logprobs"] = body["top_logprobs"]
    return ResponsesCall(
        model=model,
        input=messages,
        instructions=instructions,
        fields=fields,
        echo=echo,
        stream=stream,
        store=store,
        previous_response_id=previous,
        builtin_tools=[str(t["type"]) for t in builtin],
        passed_items=passed_items,
        raw_input=body.get("input", []),
    )
