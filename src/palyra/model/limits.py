"""Size limits checked before any upstream call, so bad input never leaves the process."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict

from palyra.model.embeddings import EmbeddingRequest
from palyra.model.errors import FailureClass, PalyraError
from palyra.model.messages import ImagePart, ToolCallPart
from palyra.model.requests import ChatRequest


class Limits(BaseModel):
    """Defaults follow the strictest of the upstream APIs we speak (OpenAI, Anthropic)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_request_bytes: int = 32 * 1024 * 1024
    max_images_per_request: int = 20
    max_image_bytes: int = 20 * 1024 * 1024
    max_embedding_inputs: int = 2048
    max_embedding_input_bytes: int = 8 * 1024 * 1024
    max_tool_argument_bytes: int = 512 * 1024
    max_tools: int = 128
    max_audio_bytes: int = 25 * 1024 * 1024


DEFAULT_LIMITS = Limits()


def _invalid(message: str, param: str) -> PalyraError:
    return PalyraError.of(FailureClass.INVALID_REQUEST, message, param=param, code="limit_exceeded")


def decoded_image_size(data: str) -> int:
    """Bytes an inline base64 image decodes to; invalid base64 is a clear request error."""
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            "an inline image is not valid base64",
            param="messages",
            code="invalid_image",
        ) from exc


def check_chat_request(request: ChatRequest, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise ``invalid_request`` naming the limit a chat request breaks."""
    # One pass over the parts (the ``images`` and ``tool_calls`` properties are a pass each);
    # the checks below then run in the same order as ever, so the same error is reported.
    images: list[ImagePart] = []
    calls: list[ToolCallPart] = []
    for message in request.messages:
        for part in message.content:
            if part.type == "image":
                images.append(part)
            elif part.type == "tool_call":
                calls.append(part)
    if len(images) > limits.max_images_per_request:
        raise _invalid(
            f"{len(images)} images in one request; the limit is {limits.max_images_per_request}",
            "messages",
        )
    for image in images:
        if image.data is not None:
            size = decoded_image_size(image.data)
            if size > limits.max_image_bytes:
                raise _invalid(
                    f"an image of {size} bytes exceeds the limit of {limits.max_image_bytes} bytes",
                    "messages",
                )
    if len(request.tools) > limits.max_tools:
        raise _invalid(
            f"{len(request.tools)} tools in one request; the limit is {limits.max_tools}", "tools"
        )
    for call in calls:
        size = len(call.arguments.encode())
        if size > limits.max_tool_argument_bytes:
            raise _invalid(
                f"tool call {call.id!r} has {size} bytes of arguments; "
                f"the limit is {limits.max_tool_argument_bytes}",
                "messages",
            )


def check_embedding_request(request: EmbeddingRequest, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise ``invalid_request`` naming the limit an embedding request breaks."""
    if len(request.inputs) > limits.max_embedding_inputs:
        raise _invalid(
            f"{len(request.inputs)} embedding inputs; the limit is {limits.max_embedding_inputs}",
            "input",
        )
    total = sum(len(text.encode()) for text in request.inputs)
    if total > limits.max_embedding_input_bytes:
        raise _invalid(
            f"embedding inputs total {total} bytes; the limit is {limits.max_embedding_input_bytes}",
            "input",
        )
    if any(not text for text in request.inputs):
        raise _invalid("an embedding input is empty", "input")


def check_embedding_dimensions(request: EmbeddingRequest, model_id: str, maximum: int) -> None:
    """Raise ``invalid_request`` when ``dimensions`` is more than the model can return."""
    if request.dimensions is not None and request.dimensions > maximum:
        raise _invalid(
            f'dimensions is {request.dimensions}, more than model "{model_id}" returns '
            f"({maximum}); ask for at most {maximum}, or set max_dimensions on that model in "
            "[[model_provider.models]] of palyra.toml if it returns more",
            "dimensions",
        )
