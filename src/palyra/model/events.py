"""Stream events: the neutral form of every provider's SSE, one event per meaningful change."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from palyra.model.errors import ErrorEnvelope
from palyra.model.extensions import Extensions, WireFormat
from palyra.model.responses import FinishReason, Logprobs, Usage


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MessageStart(_Event):
    """The answer has begun. ``usage`` is what the upstream reported at the start (Anthropic
    sends the input and cache counts before any output); ``None`` when it says nothing yet.
    ``service_tier`` is the tier serving the answer, when the upstream says so at the start;
    ``headers`` the upstream answer's headers a client reads (rate limits, request id);
    ``system_fingerprint`` OpenAI's backend configuration, which it repeats on every chunk."""

    type: Literal["message_start"] = "message_start"
    id: str
    model: str
    created: int | None = None
    usage: Usage | None = None
    service_tier: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    system_fingerprint: str | None = None


class TextDelta(_Event):
    """Answer text; ``logprobs`` are its tokens' log probabilities when the request asked."""

    type: Literal["text_delta"] = "text_delta"
    text: str
    logprobs: Logprobs | None = None


class ThinkingDelta(_Event):
    """Reasoning text for the reasoning part at ``index`` (its position among this answer's
    reasoning parts); a new index is a new part."""

    type: Literal["thinking_delta"] = "thinking_delta"
    index: int
    thinking: str


class SignatureDelta(_Event):
    """The signature of the reasoning part at ``index``; it closes that part's text."""

    type: Literal["signature_delta"] = "signature_delta"
    index: int
    signature: str


class RedactedThinking(_Event):
    """A whole redacted reasoning part at ``index``: opaque ``data`` to send back unchanged."""

    type: Literal["redacted_thinking"] = "redacted_thinking"
    index: int
    data: str


class ToolCallStart(_Event):
    """A new tool call at ``index`` (the position among this answer's tool calls)."""

    type: Literal["tool_call_start"] = "tool_call_start"
    index: int
    id: str
    name: str


class ToolCallDelta(_Event):
    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    arguments: str


class ToolCallEnd(_Event):
    type: Literal["tool_call_end"] = "tool_call_end"
    index: int


class UsageEvent(_Event):
    """The answer's usage; ``extensions`` holds the upstream's usage object as sent when it has
    counts :class:`Usage` does not model (see ``ChatResponse.usage_extensions``)."""

    type: Literal["usage"] = "usage"
    usage: Usage
    extensions: Extensions | None = None


class MessageEnd(_Event):
    type: Literal["message_end"] = "message_end"
    finish_reason: FinishReason
    stop_sequence: str | None = None


class ExtensionEvent(_Event):
    """An upstream stream event the contract does not model (a new event type, Anthropic's
    ``ping``, a server tool's block), kept in its place in the stream for a client of the
    ``owner`` API, which gets it as sent; encoders of other APIs leave it out.

    OpenAI chunks are not events of their own kinds: a chunk's fields the contract does not
    model come as one ``event="chunk"`` just before the chunk's other events, ``data`` holding
    them by level (``chunk``, ``choice``, ``delta``) and the chunk's other choices (``choices``,
    for ``n > 1``) as sent."""

    type: Literal["extension"] = "extension"
    owner: WireFormat
    event: str
    data: dict[str, Any]


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    error: ErrorEnvelope


StreamEvent = Annotated[
    MessageStart
    | ThinkingDelta
    | SignatureDelta
    | RedactedThinking
    | TextDelta
    | ToolCallStart
    | ToolCallDelta
    | ToolCallEnd
    | UsageEvent
    | MessageEnd
    | ErrorEvent
    | ExtensionEvent,
    Field(discriminator="type"),
]
