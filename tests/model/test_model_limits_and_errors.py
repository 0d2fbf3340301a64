"""Size limits refuse bad input before any upstream call; errors are redacted, capped data."""

from __future__ import annotations

import base64

import pytest

from palyra.model import (
    ChatRequest,
    EmbeddingRequest,
    ErrorEnvelope,
    FailureClass,
    ImagePart,
    Limits,
    Message,
    PalyraError,
    Role,
    ToolCallPart,
    ToolSpec,
    check_chat_request,
    check_embedding_request,
    class_policy,
    redact,
)
from palyra.model.errors import MAX_ERROR_MESSAGE_CHARS

_PNG = base64.b64encode(b"\x89PNG" + b"\0" * 96).decode()


def _image(data: str = _PNG) -> ImagePart:
    return ImagePart(data=data, media_type="image/png")


def _chat(*messages: Message, tools: list[ToolSpec] | None = None) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), tools=tools or [])


def _refusal(call: object) -> PalyraError:
    assert callable(call)
    with pytest.raises(PalyraError) as caught:
        call()
    assert caught.value.failure_class is FailureClass.INVALID_REQUEST
    return caught.value


def test_a_request_within_limits_passes() -> None:
    check_chat_request(_chat(Message(role=Role.USER, content=[_image()])))
    check_embedding_request(EmbeddingRequest(model="e", inputs=["a", "b"]))


def test_too_many_images_name_the_limit() -> None:
    request = _chat(Message(role=Role.USER, content=[_image()] * 3))
    error = _refusal(lambda: check_chat_request(request, Limits(max_images_per_request=2)))
    assert error.envelope.message == "3 images in one request; the limit is 2"
    assert (error.envelope.param, error.envelope.code) == ("messages", "limit_exceeded")


def test_an_oversized_image_names_its_size() -> None:
    request = _chat(Message(role=Role.USER, content=[_image()]))
    error = _refusal(lambda: check_chat_request(request, Limits(max_image_bytes=50)))
    assert error.envelope.message == "an image of 100 bytes exceeds the limit of 50 bytes"


@pytest.mark.parametrize("data", ["not base64!!", "aGk", "aGk=\n===="])
def test_bad_base64_is_a_clear_request_error(data: str) -> None:
    request = _chat(Message(role=Role.USER, content=[_image(data)]))
    error = _refusal(lambda: check_chat_request(request))
    assert error.envelope.message == "an inline image is not valid base64"
    assert error.envelope.code == "invalid_image"


def test_too_many_tools_name_the_limit() -> None:
    request = _chat(Message.text("user", "x"), tools=[ToolSpec(name=f"t{i}") for i in range(4)])
    error = _refusal(lambda: check_chat_request(request, Limits(max_tools=3)))
    assert error.envelope.message == "4 tools in one request; the limit is 3"
    assert error.envelope.param == "tools"


def test_oversized_tool_arguments_name_the_call() -> None:
    call = ToolCallPart(id="call_9", name="f", arguments='{"a": "' + "x" * 100 + '"}')
    request = _chat(Message.text("user", "x"), Message(role=Role.ASSISTANT, content=[call]))
    error = _refusal(lambda: check_chat_request(request, Limits(max_tool_argument_bytes=64)))
    assert error.envelope.message == (
        "tool call 'call_9' has 109 bytes of arguments; the limit is 64"
    )


def test_too_many_embedding_inputs_name_the_limit() -> None:
    request = EmbeddingRequest(model="e", inputs=["a"] * 5)
    error = _refusal(lambda: check_embedding_request(request, Limits(max_embedding_inputs=4)))
    assert error.envelope.message == "5 embedding inputs; the limit is 4"
    assert error.envelope.param == "input"


def test_oversized_embedding_inputs_name_the_total() -> None:
    request = EmbeddingRequest(model="e", inputs=["é" * 10, "abc"])
    error = _refusal(lambda: check_embedding_request(request, Limits(max_embedding_input_bytes=20)))
    assert error.envelope.message == "embedding inputs total 23 bytes; the limit is 20"


def test_an_empty_embedding_input_is_refused() -> None:
    error = _refusal(lambda: check_embedding_request(EmbeddingRequest(model="e", inputs=["a", ""])))
    assert error.envelope.message == "an embedding input is empty"


@pytest.mark.parametrize(
    ("raw", "leaked", "kept"),
    [
        ("Authorization: Bearer abc.def-ghi_123", "abc.def", "Authorization: Bearer [REDACTED]"),
        ("bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbG", "bearer [REDACTED]"),
        ("used key sk-proj-abcdefghijklmnop today", "abcdefgh", "used key sk-[REDACTED] today"),
        ("x-api-key: sk-ant-api03-xyz123456", "xyz123456", "x-api-key: [REDACTED]"),
        ("GET /v1?api_key=SECRET123&y=1", "SECRET123", "api_key=[REDACTED]&y=1"),
        ("GET /v1?key=SECRET123", "SECRET123", "key=[REDACTED]"),
        ("token=abcdef; next", "abcdef", "token=[REDACTED]; next"),
        ('{"api_key": "SECRET-JSON"}', "SECRET-JSON", '{"api_key": "[REDACTED]"}'),
        ('{"apiKey":"SECRET two words"}', "two words", '{"apiKey":"[REDACTED]"}'),
        ('"access_token": "tok 123"', "123", '"access_token": "[REDACTED]"'),
        ("'refresh_token': 'rt-1 rt-2'", "rt-1", "'refresh_token': '[REDACTED]'"),
        ("password: hunter2", "hunter2", "password: [REDACTED]"),
        ("client_secret=abc", "abc", "client_secret=[REDACTED]"),
        ('{"secret": "unterminated and long', "unterminated", '{"secret": "[REDACTED]"'),
    ],
)
def test_secrets_are_redacted_in_every_form(raw: str, leaked: str, kept: str) -> None:
    redacted = redact(raw)
    assert leaked not in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "API key is invalid",
        "the token limit was reached",
        "monkey=banana",
        "Incorrect API key provided: sk-abc12*****wxyz.",
    ],
)
def test_prose_without_secret_values_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redaction_caps_the_length_on_character_boundaries() -> None:
    capped = redact("é" * 5000)
    assert len(capped) == MAX_ERROR_MESSAGE_CHARS
    assert capped.endswith("…")
    assert redact("short", limit=3) == "sh…"
    assert redact("abc", limit=3) == "abc"


def test_an_envelope_redacts_and_applies_its_class_policy() -> None:
    envelope = ErrorEnvelope.of(
        FailureClass.AUTH_INVALID, "rejected Bearer sk-live-0123456789", provider="p"
    )
    assert "0123456789" not in envelope.message
    assert (envelope.http_status, envelope.retryable, envelope.failover_allowed) == class_policy(
        FailureClass.AUTH_INVALID
    )
    error = PalyraError(envelope)
    assert str(error) == f"auth_invalid: {envelope.message}"
    assert "0123456789" not in repr(error)


def test_every_failure_class_has_a_policy() -> None:
    for failure in FailureClass:
        status, retryable, failover = class_policy(failure)
        assert 400 <= status < 600
        assert isinstance(retryable, bool) and isinstance(failover, bool)
    assert class_policy(FailureClass.RATE_LIMITED) == (429, True, True)
    assert class_policy(FailureClass.INVALID_REQUEST) == (400, False, False)
