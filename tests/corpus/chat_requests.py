"""Shared conformance corpus: named neutral chat requests covering every feature of the contract.

Provider adapters build a wire payload from each and check it against the vendor's own schema and
SDK types. Names are unique and stable so a failing case is easy to find.
"""

from __future__ import annotations

from palyra.model import (
    CacheControl,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    NamedToolChoice,
    RedactedThinkingPart,
    ResponseFormat,
    Role,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolSpec,
)

MODEL = "corpus-model"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
)
TIME = ToolSpec(
    name="get_time",
    description="Local time in a timezone",
    parameters={
        "type": "object",
        "properties": {"tz": {"type": "string"}},
        "required": ["tz"],
        "additionalProperties": False,
    },
    strict=True,
)
NO_ARGS = ToolSpec(name="ping")
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def _user(text: str) -> Message:
    return Message.text(Role.USER, text)


def _assistant(text: str) -> Message:
    return Message.text(Role.ASSISTANT, text)


def _call(
    call_id: str, name: str = "get_weather", arguments: str = '{"city":"Oslo"}'
) -> ToolCallPart:
    return ToolCallPart(id=call_id, name=name, arguments=arguments)


def _req(*messages: Message, **fields: object) -> ChatRequest:
    return ChatRequest.model_validate({"model": MODEL, "messages": list(messages), **fields})


def _image_user(*images: ImagePart, text: str | None = "What is in this image?") -> Message:
    parts: list[TextPart | ImagePart] = [TextPart(text=text)] if text is not None else []
    return Message(role=Role.USER, content=[*parts, *images])


_WEATHER_TURN = [
    _user("What's the weather in Oslo?"),
    Message(role=Role.ASSISTANT, content=[_call("call_1")]),
    Message.tool_result("call_1", "12C and raining"),
]

CHAT_CORPUS: list[tuple[str, ChatRequest]] = [
    # Plain text and roles.
    ("plain-user", _req(_user("Hello"))),
    ("system-then-user", _req(Message.text(Role.SYSTEM, "Be terse."), _user("Hi"))),
    ("developer-then-user", _req(Message.text(Role.DEVELOPER, "Answer in French."), _user("Hi"))),
    (
        "system-and-developer",
        _req(
            Message.text(Role.SYSTEM, "You are helpful."),
            Message.text(Role.DEVELOPER, "Prefer lists."),
            _user("Name three fruits."),
        ),
    ),
    (
        "multi-turn",
        _req(_user("Hi"), _assistant("Hello! How can I help?"), _user("Tell me a joke.")),
    ),
    (
        "long-multi-turn",
        _req(*[(_user if i % 2 == 0 else _assistant)(f"turn {i}") for i in range(9)]),
    ),
    ("empty-user-text", _req(_user(""))),
    ("whitespace-user-text", _req(_user("   \n\t "))),
    ("unicode-text", _req(_user("Grüße aus Zürich — 你好, мир! 🚀 \u200b e\u0301"))),
    ("user-with-name", _req(Message(role=Role.USER, content=[TextPart(text="hi")], name="alice"))),
    (
        "multi-part-text",
        _req(Message(role=Role.USER, content=[TextPart(text="first. "), TextPart(text="second.")])),
    ),
    ("consecutive-users", _req(_user("one"), _user("two"), _user("three"))),
    (
        "consecutive-assistants",
        _req(_user("start"), _assistant("part A"), _assistant("part B"), _user("go on")),
    ),
    (
        "consecutive-systems",
        _req(Message.text(Role.SYSTEM, "a"), Message.text(Role.SYSTEM, "b"), _user("x")),
    ),
    ("assistant-prefill-last", _req(_user("Write JSON"), _assistant("{"))),
    # Images.
    ("image-url", _req(_image_user(ImagePart(url="https://example.com/cat.png")))),
    *[
        (
            f"image-url-detail-{detail}",
            _req(_image_user(ImagePart(url="https://example.com/cat.png", detail=detail))),
        )
        for detail in ("auto", "low", "high")
    ],
    ("image-base64", _req(_image_user(ImagePart(data=PNG_B64, media_type="image/png")))),
    *[
        (
            f"image-base64-detail-{detail}",
            _req(_image_user(ImagePart(data=PNG_B64, media_type="image/png", detail=detail))),
        )
        for detail in ("auto", "low", "high")
    ],
    (
        "image-only-no-text",
        _req(_image_user(ImagePart(url="https://example.com/a.jpg"), text=None)),
    ),
    (
        "several-images",
        _req(
            _image_user(
                ImagePart(url="https://example.com/a.jpg", detail="low"),
                ImagePart(data=PNG_B64, media_type="image/png", detail="high"),
                ImagePart(url="https://example.com/b.webp"),
                text="Compare these.",
            )
        ),
    ),
    (
        "image-then-followup",
        _req(
            _image_user(ImagePart(url="https://example.com/a.jpg")),
            _assistant("A cat."),
            _user("What colour?"),
        ),
    ),
    # Tools.
    ("tools-declared", _req(_user("Weather in Oslo?"), tools=[WEATHER])),
    ("tools-strict", _req(_user("Time in Tokyo?"), tools=[TIME])),
    ("tool-no-args", _req(_user("ping it"), tools=[NO_ARGS])),
    ("tool-choice-auto", _req(_user("x"), tools=[WEATHER], tool_choice="auto")),
    ("tool-choice-none", _req(_user("x"), tools=[WEATHER], tool_choice="none")),
    ("tool-choice-required", _req(_user("x"), tools=[WEATHER, TIME], tool_choice="required")),
    (
        "tool-choice-named",
        _req(_user("x"), tools=[WEATHER, TIME], tool_choice=NamedToolChoice(name="get_time")),
    ),
    ("parallel-tool-calls-on", _req(_user("x"), tools=[WEATHER, TIME], parallel_tool_calls=True)),
    ("parallel-tool-calls-off", _req(_user("x"), tools=[WEATHER, TIME], parallel_tool_calls=False)),
    ("single-tool-call-and-result", _req(*_WEATHER_TURN, tools=[WEATHER])),
    (
        "tool-result-then-answer-then-user",
        _req(
            *_WEATHER_TURN, _assistant("It is 12C and raining."), _user("Thanks!"), tools=[WEATHER]
        ),
    ),
    (
        "multiple-sequential-tool-calls",
        _req(
            *_WEATHER_TURN,
            Message(
                role=Role.ASSISTANT, content=[_call("call_2", "get_time", '{"tz":"Europe/Oslo"}')]
            ),
            Message.tool_result("call_2", "14:05"),
            tools=[WEATHER, TIME],
        ),
    ),
    (
        "parallel-tool-calls-with-results",
        _req(
            _user("Weather in Oslo and Paris, and the time in Tokyo?"),
            Message(
                role=Role.ASSISTANT,
                content=[
                    _call("call_a"),
                    _call("call_b", arguments='{"city":"Paris","unit":"c"}'),
                    _call("call_c", "get_time", '{"tz":"Asia/Tokyo"}'),
                ],
            ),
            Message.tool_result("call_a", "12C"),
            Message.tool_result("call_b", "18C"),
            Message.tool_result("call_c", "22:00"),
            tools=[WEATHER, TIME],
            parallel_tool_calls=True,
        ),
    ),
    (
        "tool-result-is-error",
        _req(
            _user("Weather?"),
            Message(role=Role.ASSISTANT, content=[_call("call_e")]),
            Message.tool_result("call_e", "city not found", is_error=True),
            tools=[WEATHER],
        ),
    ),
    (
        "tool-result-json-object",
        _req(
            _user("Weather?"),
            Message(role=Role.ASSISTANT, content=[_call("call_j")]),
            Message.tool_result("call_j", {"temp": 12, "sky": "rain", "wind": [3, 5]}),
            tools=[WEATHER],
        ),
    ),
    (
        "tool-result-json-list",
        _req(
            _user("Weather?"),
            Message(role=Role.ASSISTANT, content=[_call("call_l")]),
            Message.tool_result("call_l", [{"day": 1, "t": 10}, {"day": 2, "t": 11}]),
            tools=[WEATHER],
        ),
    ),
    (
        "tool-result-empty",
        _req(
            _user("ping"),
            Message(role=Role.ASSISTANT, content=[_call("call_p", "ping", "{}")]),
            Message.tool_result("call_p", ""),
            tools=[NO_ARGS],
        ),
    ),
    (
        "assistant-text-and-tool-calls",
        _req(
            _user("Weather in Oslo?"),
            Message(
                role=Role.ASSISTANT,
                content=[TextPart(text="Let me check that."), _call("call_t")],
            ),
            Message.tool_result("call_t", "12C"),
            tools=[WEATHER],
        ),
    ),
    (
        "tool-call-unicode-arguments",
        _req(
            _user("Weather in Zürich?"),
            Message(role=Role.ASSISTANT, content=[_call("call_u", arguments='{"city":"Zürich"}')]),
            Message.tool_result("call_u", "Sonnig ☀"),
            tools=[WEATHER],
        ),
    ),
    (
        "tool-history-with-choice-none",
        _req(*_WEATHER_TURN, tools=[WEATHER], tool_choice="none"),
    ),
    # Response formats.
    ("response-format-text", _req(_user("hi"), response_format=ResponseFormat(type="text"))),
    (
        "response-format-json-object",
        _req(
            _user("Give me JSON with a key 'a'."),
            response_format=ResponseFormat(type="json_object"),
        ),
    ),
    (
        "response-format-json-schema-strict",
        _req(
            _user("Invent a person."),
            response_format=ResponseFormat(
                type="json_schema", schema_name="person", json_schema=PERSON_SCHEMA, strict=True
            ),
        ),
    ),
    (
        "response-format-json-schema-loose",
        _req(
            _user("Invent a person."),
            response_format=ResponseFormat(type="json_schema", json_schema=PERSON_SCHEMA),
        ),
    ),
    # Sampling and limits.
    ("max-output-tokens", _req(_user("Count to ten."), max_output_tokens=64)),
    ("temperature-zero", _req(_user("x"), temperature=0.0)),
    ("temperature-two", _req(_user("x"), temperature=2.0)),
    ("top-p", _req(_user("x"), top_p=0.5)),
    ("temperature-and-top-p", _req(_user("x"), temperature=0.7, top_p=0.9)),
    ("stop-one", _req(_user("x"), stop=["END"])),
    ("stop-four", _req(_user("x"), stop=["\n\n", "###", "END", "Observation:"])),
    # Streaming and attribution.
    ("stream-plain", _req(_user("Stream me a poem."), stream=True)),
    ("stream-tools", _req(_user("Weather?"), tools=[WEATHER], tool_choice="auto", stream=True)),
    ("stream-tool-history", _req(*_WEATHER_TURN, tools=[WEATHER], stream=True)),
    ("user-id", _req(_user("x"), user="user-1234")),
    ("metadata", _req(_user("x"), metadata={"session": "s-1", "team": "search"})),
    # Sampling and answer options every target can take (mapped or dropped by rule; the ones
    # Anthropic refuses are in the OpenAI conformance cases).
    ("seed", _req(_user("x"), seed=1234)),
    ("penalties", _req(_user("x"), presence_penalty=0.5, frequency_penalty=-0.5)),
    ("service-tier-auto", _req(_user("x"), service_tier="auto")),
    ("service-tier-default", _req(_user("x"), service_tier="default")),
    ("service-tier-flex", _req(_user("x"), service_tier="flex")),
    ("store", _req(_user("x"), store=True)),
    ("prediction-text", _req(_user("x"), prediction={"content": "old code"})),
    (
        "prediction-parts",
        _req(_user("x"), prediction={"content": [{"type": "text", "text": "old"}]}),
    ),
    ("one-choice", _req(_user("x"), n=1)),
    ("logprobs-off", _req(_user("x"), logprobs=False)),
    ("reasoning-effort-low", _req(_user("x"), reasoning={"effort": "low"})),
    ("reasoning-effort-none", _req(_user("x"), reasoning={"effort": "none"})),
    ("reasoning-budget", _req(_user("x"), reasoning={"budget_tokens": 3000})),
    (
        "everything",
        _req(
            Message.text(Role.SYSTEM, "sys"),
            Message.text(Role.DEVELOPER, "dev"),
            _image_user(ImagePart(url="https://example.com/a.jpg", detail="high")),
            Message(role=Role.ASSISTANT, content=[TextPart(text="Checking."), _call("call_x")]),
            Message.tool_result("call_x", {"ok": True}),
            _user("Now as JSON."),
            tools=[WEATHER, TIME],
            tool_choice="auto",
            parallel_tool_calls=False,
            response_format=ResponseFormat(
                type="json_schema", schema_name="person", json_schema=PERSON_SCHEMA, strict=True
            ),
            max_output_tokens=256,
            temperature=0.3,
            top_p=0.8,
            stop=["END"],
            stream=True,
            user="u-9",
            metadata={"k": "v"},
        ),
    ),
]

PDF_B64 = "JVBERi0xLjQKJSVFT0YK"
_MARK = CacheControl()
_HOUR = CacheControl(ttl="1h")

# Content parts both payloads carry (OpenAI by its own rules: markers and reasoning dropped,
# documents as file or text parts).
CHAT_CORPUS += [
    (
        "thinking-history-with-tools",
        _req(
            _user("Weather in Oslo?"),
            Message(
                role=Role.ASSISTANT,
                content=[
                    ThinkingPart(thinking="I should call the tool.", signature="c2lnbmF0dXJl"),
                    RedactedThinkingPart(data="cmVkYWN0ZWQ="),
                    _call("toolu_1"),
                ],
            ),
            Message.tool_result("toolu_1", "4 C"),
            tools=[WEATHER],
            reasoning={"budget_tokens": 2048},
            max_output_tokens=4096,
        ),
    ),
    (
        "unsigned-reasoning-history",
        _req(
            _user("hi"),
            Message(
                role=Role.ASSISTANT, content=[ThinkingPart(thinking="hm"), TextPart(text="Hi")]
            ),
            _user("again"),
        ),
    ),
    ("thinking-disabled", _req(_user("x"), reasoning={"enabled": False})),
    ("thinking-adaptive", _req(_user("x"), reasoning={"adaptive": True, "display": "omitted"})),
    (
        "cache-markers-everywhere",
        _req(
            Message(
                role=Role.SYSTEM,
                content=[
                    TextPart(text="Rules."),
                    TextPart(text="Long rules.", cache_control=_HOUR),
                ],
                content_list=True,
            ),
            Message(
                role=Role.USER,
                content=[
                    TextPart(text="Context.", cache_control=_MARK),
                    ImagePart(data=PNG_B64, media_type="image/png", cache_control=_MARK),
                ],
            ),
            tools=[WEATHER.model_copy(update={"cache_control": _MARK})],
        ),
    ),
    (
        "system-as-blocks",
        _req(
            Message(role=Role.SYSTEM, content=[TextPart(text="s")], content_list=True), _user("x")
        ),
    ),
    (
        "documents-pdf-and-text",
        _req(
            Message(
                role=Role.USER,
                content=[
                    DocumentPart(
                        data=PDF_B64,
                        media_type="application/pdf",
                        title="Report",
                        citations=True,
                        cache_control=_MARK,
                    ),
                    DocumentPart(text="Plain notes.", title="notes.txt", context="from Ann"),
                    TextPart(text="Summarise them."),
                ],
            )
        ),
    ),
]

# Content only Anthropic reads: an OpenAI payload refuses these, naming the field
# (tests/daemon/test_content_cross_format_sdk.py).
ANTHROPIC_ONLY_CORPUS: list[tuple[str, ChatRequest]] = [
    ("top-k", _req(_user("x"), top_k=5)),
    # (A ``file`` document source is in Anthropic's files beta only, outside this schema.)
    (
        "document-by-url",
        _req(
            Message(
                role=Role.USER,
                content=[DocumentPart(url="https://example.com/a.pdf"), TextPart(text="Read.")],
            )
        ),
    ),
]

# Options only OpenAI honours: an Anthropic payload refuses them (tests/providers/
# test_field_mapping.py), an OpenAI payload must still match the vendor's schema.
OPENAI_ONLY_CORPUS: list[tuple[str, ChatRequest]] = [
    ("logprobs", _req(_user("x"), logprobs=True, top_logprobs=5)),
    ("logit-bias", _req(_user("x"), logit_bias={"50256": -100, "1734": 20})),
    (
        "every-option",
        _req(
            _user("x"),
            seed=1,
            presence_penalty=1.5,
            frequency_penalty=0.1,
            logit_bias={"11": 1},
            logprobs=True,
            top_logprobs=0,
            n=1,
            service_tier="priority",
            store=False,
            prediction={"content": "y"},
            reasoning={"effort": "max"},
            user="u",
            metadata={"a": "b"},
        ),
    ),
]
