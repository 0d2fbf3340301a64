"""Neutral reasoning, cache markers, documents and ``top_k`` -> the Anthropic Messages payload."""

from __future__ import annotations

from typing import Any

import pytest

from palyra.model import (
    CacheControl,
    ChatRequest,
    DocumentPart,
    FailureClass,
    Message,
    PalyraError,
    ReasoningConfig,
    RedactedThinkingPart,
    Role,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolSpec,
)
from palyra.providers.anthropic import (
    build_anthropic_count_tokens_payload,
    build_anthropic_messages_payload,
)

HOUR = CacheControl(ttl="1h")


def req(*messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="claude-x", messages=list(messages), **kwargs)


def user(*parts: Any) -> Message:
    return Message(role=Role.USER, content=list(parts))


def test_system_blocks_stay_blocks_with_their_cache_markers() -> None:
    system = Message(
        role=Role.SYSTEM,
        content=[TextPart(text="Be brief."), TextPart(text="Long rules.", cache_control=HOUR)],
        content_list=True,
    )
    payload = build_anthropic_messages_payload(req(system, user(TextPart(text="hi"))))
    assert payload["system"] == [
        {"type": "text", "text": "Be brief."},
        {
            "type": "text",
            "text": "Long rules.",
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
    ]


def test_system_sent_as_one_block_list_stays_a_list() -> None:
    system = Message(role=Role.SYSTEM, content=[TextPart(text="Be brief.")], content_list=True)
    payload = build_anthropic_messages_payload(req(system, user(TextPart(text="hi"))))
    assert payload["system"] == [{"type": "text", "text": "Be brief."}]


def test_system_sent_as_a_string_stays_a_string() -> None:
    payload = build_anthropic_messages_payload(
        req(Message.text(Role.SYSTEM, "Be brief."), user(TextPart(text="hi")))
    )
    assert payload["system"] == "Be brief."


def test_cache_markers_on_text_tool_calls_results_and_tools() -> None:
    marker = CacheControl()
    request = req(
        user(TextPart(text="call f", cache_control=marker)),
        Message(
            role=Role.ASSISTANT,
            content=[ToolCallPart(id="t1", name="f", arguments="{}", cache_control=marker)],
        ),
        Message.tool_result("t1", "done"),
        tools=[ToolSpec(name="f", cache_control=HOUR)],
    )
    payload = build_anthropic_messages_payload(request)
    ephemeral = {"type": "ephemeral"}
    assert payload["messages"][0]["content"][0]["cache_control"] == ephemeral
    assert payload["messages"][1]["content"][0]["cache_control"] == ephemeral
    assert payload["tools"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_thinking_blocks_go_back_first_with_signatures_byte_for_byte() -> None:
    signature = "EqQBCkYIBxgCKkB+/=="
    assistant = Message(
        role=Role.ASSISTANT,
        content=[
            ThinkingPart(thinking="Let me think.\n", signature=signature),
            RedactedThinkingPart(data="EmwKAhgBEgy3va3pzix/LafPsn4a"),
            TextPart(text="Checking."),
            ToolCallPart(id="t1", name="f", arguments="{}"),
        ],
    )
    payload = build_anthropic_messages_payload(
        req(user(TextPart(text="hi")), assistant, Message.tool_result("t1", "ok"))
    )
    assert payload["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me think.\n", "signature": signature},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
    ]


def test_unsigned_reasoning_is_left_out() -> None:
    assistant = Message(
        role=Role.ASSISTANT, content=[ThinkingPart(thinking="hm"), TextPart(text="Hi.")]
    )
    payload = build_anthropic_messages_payload(
        req(user(TextPart(text="hi")), assistant, user(TextPart(text="more")))
    )
    assert payload["messages"][1]["content"] == [{"type": "text", "text": "Hi."}]


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "thinking"),
    [
        (ReasoningConfig(budget_tokens=2048), 4096, {"type": "enabled", "budget_tokens": 2048}),
        (ReasoningConfig(enabled=False), 4096, {"type": "disabled"}),
        (ReasoningConfig(effort="none"), 4096, {"type": "disabled"}),
        (
            ReasoningConfig(adaptive=True, display="omitted"),
            4096,
            {"type": "adaptive", "display": "omitted"},
        ),
        (ReasoningConfig(effort="low"), 8000, {"type": "enabled", "budget_tokens": 2048}),
        (ReasoningConfig(effort="high"), 8000, {"type": "enabled", "budget_tokens": 7999}),
    ],
)
def test_reasoning_becomes_the_thinking_parameter(
    reasoning: ReasoningConfig, max_tokens: int, thinking: dict[str, Any]
) -> None:
    payload = build_anthropic_messages_payload(
        req(user(TextPart(text="hi")), reasoning=reasoning, max_output_tokens=max_tokens)
    )
    assert payload["thinking"] == thinking


def test_effort_without_room_for_a_budget_is_refused_naming_the_field() -> None:
    request = req(
        user(TextPart(text="hi")), reasoning=ReasoningConfig(effort="high"), max_output_tokens=500
    )
    with pytest.raises(PalyraError) as caught:
        build_anthropic_messages_payload(request)
    assert caught.value.envelope.failure_class is FailureClass.INVALID_REQUEST
    assert caught.value.envelope.param == "reasoning_effort"
    assert "1024" in caught.value.envelope.message


@pytest.mark.parametrize(
    ("document", "block"),
    [
        (
            DocumentPart(data="JVBERi0=", media_type="application/pdf", title="Q3", citations=True),
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                "title": "Q3",
                "citations": {"enabled": True},
            },
        ),
        (
            DocumentPart(url="https://x.test/a.pdf", context="from the board", cache_control=HOUR),
            {
                "type": "document",
                "source": {"type": "url", "url": "https://x.test/a.pdf"},
                "context": "from the board",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        ),
        (
            DocumentPart(text="plain words", filename="notes.txt"),
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "plain words"},
                "title": "notes.txt",
            },
        ),
        (
            DocumentPart(file_id="file_011CNha8iCJcU1wXNR6q4V8w"),
            {
                "type": "document",
                "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"},
            },
        ),
    ],
)
def test_documents_become_document_blocks(document: DocumentPart, block: dict[str, Any]) -> None:
    payload = build_anthropic_messages_payload(req(user(document, TextPart(text="sum up"))))
    assert payload["messages"][0]["content"][0] == block


@pytest.mark.parametrize(
    ("document", "named"),
    [
        (DocumentPart(file_id="file-abc123"), "OpenAI file id"),
        (DocumentPart(data="aGk=", media_type="application/msword"), "application/msword"),
    ],
)
def test_documents_anthropic_cannot_read_are_refused(document: DocumentPart, named: str) -> None:
    with pytest.raises(PalyraError) as caught:
        build_anthropic_messages_payload(req(user(document)))
    assert caught.value.envelope.failure_class is FailureClass.INVALID_REQUEST
    assert named in caught.value.envelope.message


def test_top_k_is_sent() -> None:
    payload = build_anthropic_messages_payload(req(user(TextPart(text="hi")), top_k=5))
    assert payload["top_k"] == 5


def test_count_tokens_payload_keeps_thinking() -> None:
    request = req(user(TextPart(text="hi")), reasoning=ReasoningConfig(budget_tokens=2048))
    assert build_anthropic_count_tokens_payload(request)["thinking"] == {
        "type": "enabled",
        "budget_tokens": 2048,
    }
