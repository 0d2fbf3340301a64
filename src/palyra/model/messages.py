"""Chat messages and their content parts: the shape every provider adapter starts from."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from palyra.model.extensions import Extensions, WireFormat


class Role(StrEnum):
    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Block(_Part):
    """A content part of a message. ``extensions`` holds the part's wire fields the contract
    does not model (Anthropic ``citations`` on a text block, a ``cache_control`` variant, an
    OpenAI-compatible server's own part options), for an upstream of the API that sent them."""

    extensions: Extensions | None = None


CacheTTL = Literal["5m", "1h"]


class CacheControl(_Part):
    """A prompt-cache breakpoint: everything up to and including the marked part is cached.

    Anthropic's ``cache_control`` (``ephemeral``, with an optional ``ttl``); OpenAI caches
    prompts on its own and has no marker, so OpenAI payloads leave it out.
    """

    type: Literal["ephemeral"] = "ephemeral"
    ttl: CacheTTL | None = None


class TextPart(_Block):
    type: Literal["text"] = "text"
    text: str
    cache_control: CacheControl | None = None


ImageDetail = Literal["auto", "low", "high"]


class ImagePart(_Block):
    """An image by URL or inline base64; exactly one of ``url`` and ``data``."""

    type: Literal["image"] = "image"
    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: ImageDetail | None = None
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)
    cache_control: CacheControl | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImagePart:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image needs exactly one of 'url' or 'data'")
        if self.data is not None and not self.media_type:
            raise ValueError("an inline image needs 'media_type' (e.g. image/png)")
        return self

    @classmethod
    def from_data_url(cls, url: str, detail: ImageDetail | None = None) -> ImagePart:
        """Split ``data:<media>;base64,<data>`` into media type and data; other URLs stay URLs."""
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            media = header[5:].split(";", 1)[0]
            if ";base64" not in header or not media:
                raise ValueError("a data URL image must be 'data:<media type>;base64,<data>'")
            return cls(data=payload, media_type=media, detail=detail)
        return cls(url=url, detail=detail)

    def as_url(self) -> str:
        """The image as a URL, inline data becoming a data URL."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"


class ToolCallPart(_Block):
    """A call the assistant asked for. ``arguments`` is the JSON text exactly as produced."""

    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: str = "{}"
    cache_control: CacheControl | None = None

    def arguments_json(self) -> Any:
        """The arguments parsed; invalid JSON is returned as ``{"raw": text}`` rather than lost."""
        if not self.arguments.strip():
            return {}
        try:
            return orjson.loads(self.arguments)
        except orjson.JSONDecodeError:
            return {"raw": self.arguments}


class ToolResultPart(_Block):
    """The answer to one tool call: text, or JSON content."""

    type: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    content: str | list[Any] | dict[str, Any] = ""
    is_error: bool = False
    cache_control: CacheControl | None = None

    def content_text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return orjson.dumps(self.content).decode()


class ThinkingPart(_Block):
    """The model's reasoning before its answer. ``signature`` is the upstream's opaque proof
    (Anthropic's); it must go back byte for byte with the assistant turn it came in, or the
    upstream refuses the history. Reasoning from OpenAI-compatible servers has none."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str | None = None


class RedactedThinkingPart(_Block):
    """Reasoning the upstream encrypted (Anthropic's ``redacted_thinking``): ``data`` is opaque
    and goes back unchanged with its assistant turn."""

    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


ReasoningPart = ThinkingPart | RedactedThinkingPart


class DocumentPart(_Block):
    """A document the model reads: a PDF (inline base64 ``data`` or a ``url``), plain ``text``,
    or a ``file_id`` the upstream already holds. Exactly one source.

    ``title``, ``context`` and ``citations`` are Anthropic's document options; ``filename`` is
    OpenAI's name for an inline file.
    """

    type: Literal["document"] = "document"
    data: str | None = None
    url: str | None = None
    text: str | None = None
    file_id: str | None = None
    media_type: str | None = None
    filename: str | None = None
    title: str | None = None
    context: str | None = None
    citations: bool | None = None
    cache_control: CacheControl | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DocumentPart:
        sources = [s for s in (self.data, self.url, self.text, self.file_id) if s is not None]
        if len(sources) != 1:
            raise ValueError(
                "a document needs exactly one of 'data' (base64), 'url', 'text' or 'file_id'"
            )
        if self.data is not None and not self.media_type:
            raise ValueError("an inline document needs 'media_type' (e.g. application/pdf)")
        return self


class ExtensionPart(_Part):
    """A content block the contract does not model, exactly as the ``owner`` API sent it
    (Anthropic ``server_tool_use``, ``web_search_tool_result``, ``search_result``, any newer
    type): an upstream of that API gets it back in its place; payload builders of another API
    leave it out of assistant history and refuse it elsewhere (README, "Field mapping")."""

    type: Literal["extension"] = "extension"
    owner: WireFormat
    block: dict[str, Any]


ContentPart = Annotated[
    TextPart
    | ImagePart
    | ToolCallPart
    | ToolResultPart
    | ThinkingPart
    | RedactedThinkingPart
    | DocumentPart
    | ExtensionPart,
    Field(discriminator="type"),
]


_USER_PARTS = (ImagePart, DocumentPart)
_REASONING_PARTS = (ThinkingPart, RedactedThinkingPart)


class Message(BaseModel):
    """One turn. Tool calls live in assistant content; tool results in tool-role content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: list[ContentPart] = Field(default_factory=list)
    name: str | None = None
    content_list: bool = False
    extensions: Extensions | None = None
    """The message's fields the contract does not model, for a client of the same API."""
    """The client sent the content as a list of blocks, not a plain string: a same-format
    route sends it back as blocks (Anthropic's ``system``), whatever a plain text would get."""

    @model_validator(mode="after")
    def _parts_fit_role(self) -> Message:
        role = self.role
        for part in self.content:
            kind = type(part)
            if kind is TextPart:  # the usual part, allowed everywhere
                continue
            if kind is ToolCallPart and role is not Role.ASSISTANT:
                raise ValueError(f"a tool call can only appear in an assistant message, not {role}")
            if kind is ToolResultPart and role is not Role.TOOL:
                raise ValueError(f"a tool result can only appear in a tool message, not {role}")
            if kind in _USER_PARTS and role is not Role.USER and role is not Role.TOOL:
                what = "an image" if kind is ImagePart else "a document"
                raise ValueError(f"{what} can only appear in a user message, not {role}")
            if kind in _REASONING_PARTS and role is not Role.ASSISTANT:
                raise ValueError(
                    f"reasoning ({part.type}) can only appear in an assistant message, not {role}"
                )
        return self

    @classmethod
    def text(cls, role: Role | str, text: str) -> Message:
        return cls(role=Role(role), content=[TextPart(text=text)])

    @classmethod
    def tool_result(
        cls, tool_call_id: str, content: str | list[Any] | dict[str, Any], *, is_error: bool = False
    ) -> Message:
        return cls(
            role=Role.TOOL,
            content=[ToolResultPart(tool_call_id=tool_call_id, content=content, is_error=is_error)],
        )

    def text_content(self, sep: str = "") -> str:
        """All text parts joined; images and tool parts are left out."""
        return sep.join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.content if isinstance(p, ToolCallPart)]

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.content if isinstance(p, ImagePart)]

    @property
    def reasoning(self) -> list[ReasoningPart]:
        return [p for p in self.content if isinstance(p, ThinkingPart | RedactedThinkingPart)]
