"""The provider-neutral contract: pure data types, no I/O."""

from palyra.model.accumulate import StreamAccumulator
from palyra.model.embeddings import EmbeddingRequest, EmbeddingResponse
from palyra.model.errors import ErrorEnvelope, FailureClass, PalyraError, class_policy, redact
from palyra.model.events import (
    ErrorEvent,
    MessageEnd,
    MessageStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
)
from palyra.model.limits import DEFAULT_LIMITS, Limits, check_chat_request, check_embedding_request
from palyra.model.messages import (
    ContentPart,
    ImagePart,
    Message,
    Role,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from palyra.model.models import Capability, ModelInfo, TokenCount
from palyra.model.requests import ChatRequest, NamedToolChoice, ResponseFormat, ToolChoice, ToolSpec
from palyra.model.responses import ChatResponse, FinishReason, Usage
from palyra.model.transcription import (
    TranscriptionRequest,
    TranscriptionResponse,
    TranscriptionSegment,
    TranscriptionWord,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Capability",
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorEnvelope",
    "ErrorEvent",
    "FailureClass",
    "FinishReason",
    "ImagePart",
    "Limits",
    "Message",
    "MessageEnd",
    "MessageStart",
    "ModelInfo",
    "NamedToolChoice",
    "PalyraError",
    "ResponseFormat",
    "Role",
    "StreamAccumulator",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "TokenCount",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallPart",
    "ToolCallStart",
    "ToolChoice",
    "ToolResultPart",
    "ToolSpec",
    "TranscriptionRequest",
    "TranscriptionResponse",
    "TranscriptionSegment",
    "TranscriptionWord",
    "Usage",
    "UsageEvent",
    "check_chat_request",
    "check_embedding_request",
    "class_policy",
    "redact",
]
