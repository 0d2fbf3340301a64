"""The neutral chat request: what a caller wants, before any provider's wire format."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from palyra.model.extensions import Extensions
from palyra.model.messages import CacheControl, ImagePart, Message, Role, TextPart, ToolResultPart

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class ToolSpec(BaseModel):
    """A function the model may call, described by a JSON schema for its arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: StrictBool | None = None
    cache_control: CacheControl | None = None
    extensions: Extensions | None = None
    """The tool definition's fields the contract does not model (Anthropic ``input_examples``,
    ``defer_loading``, a server tool's ``type`` and options; OpenAI-compatible extras), for an
    upstream of the API that sent them. A ``type`` other than ``custom`` / ``function`` among
    them makes it a tool the upstream runs itself (:attr:`server_type`)."""

    @property
    def server_type(self) -> str | None:
        """The type of a tool the upstream runs itself (Anthropic ``web_search_20250305``,
        ``code_execution_...``), or None for a function the client runs."""
        ext = self.extensions
        if ext is None:
            return None
        kind = ext.fields.get("type")
        return kind if isinstance(kind, str) and kind not in ("custom", "function") else None


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["tool"] = "tool"
    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class ResponseFormat(BaseModel):
    """Plain text, any JSON object, or JSON matching ``json_schema``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema_name: str | None = None
    json_schema: dict[str, Any] | None = None
    strict: StrictBool | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response format 'json_schema' needs a 'json_schema'")
        return self


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
ThinkingDisplay = Literal["summarized", "omitted"]


class ReasoningConfig(BaseModel):
    """Whether the model reasons before answering, and how much.

    ``enabled=False`` turns reasoning off (Anthropic ``thinking: {"type": "disabled"}``).
    ``budget_tokens`` is a thinking budget (Anthropic ``budget_tokens``); ``effort`` a level
    (OpenAI ``reasoning_effort``, Anthropic ``output_config.effort``); either, both or neither
    may be set. ``adaptive`` leaves the amount to the model (Anthropic ``"adaptive"``);
    ``display`` is Anthropic's choice between summarized and omitted thinking text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    effort: ReasoningEffort | None = None
    budget_tokens: int | None = Field(default=None, ge=1)
    adaptive: bool = False
    display: ThinkingDisplay | None = None


ServiceTier = Literal["auto", "default", "flex", "scale", "priority"]
"""OpenAI's processing tiers; Anthropic's ``standard_only`` is ``default`` here."""

LOGIT_BIAS_LIMIT = 100


class Prediction(BaseModel):
    """Predicted output (OpenAI's ``prediction``): text the answer will largely repeat, which the
    upstream uses to answer faster. ``content`` keeps the client's shape (a string or text parts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["content"] = "content"
    content: str | list[TextPart]


# The sampling and service options beyond the basics; a request that set none lets each
# payload builder skip them all with one set test.
OPTION_FIELDS = frozenset(
    {
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "service_tier",
        "store",
        "prediction",
    }
)


class ChatRequest(BaseModel):
    """One chat call. ``model`` is the name the provider gets (routing rewrites it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop: list[str] = Field(default_factory=list, max_length=16)
    reasoning: ReasoningConfig | None = None
    response_format: ResponseFormat | None = None
    stream: StrictBool = False
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    # Sampling and answer options (OpenAI's names; the README's field table says how each one
    # travels to an Anthropic upstream: mapped, dropped by rule, or refused with a 400).
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, int] = Field(default_factory=dict)
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    n: int | None = Field(default=None, ge=1, le=128)
    service_tier: ServiceTier | None = None
    store: StrictBool | None = None
    prediction: Prediction | None = None
    # The client's headers a provider may pass on (names lowercased; palyra.model.forwarding
    # says which: vendor headers and allowlisted ones, never credentials or hop-by-hop ones).
    headers: dict[str, str] = Field(default_factory=dict)
    # Top-level fields of the client's body the contract does not model (palyra.model.extensions).
    extensions: Extensions | None = None

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, tools: list[ToolSpec]) -> list[ToolSpec]:
        seen: set[str] = set()
        for tool in tools:
            if tool.name in seen:
                raise ValueError(f"tool name {tool.name!r} is declared twice")
            seen.add(tool.name)
        return tools

    @field_validator("logit_bias")
    @classmethod
    def _bias_in_range(cls, bias: dict[str, int]) -> dict[str, int]:
        for token, value in bias.items():
            if not token.isdigit():
                raise ValueError(f"logit_bias key {token!r} is not a token id (digits)")
            if not -LOGIT_BIAS_LIMIT <= value <= LOGIT_BIAS_LIMIT:
                raise ValueError(f"logit_bias[{token!r}] is {value}; use -100 to 100")
        return bias

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatRequest:
        if self.top_logprobs is not None and self.logprobs is not True:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @model_validator(mode="after")
    def _tool_choice_matches_tools(self) -> ChatRequest:
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.name not in {
            t.name for t in self.tools
        }:
            raise ValueError(f"tool_choice names {self.tool_choice.name!r}, which is not in tools")
        if self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs at least one tool")
        return self

    @property
    def images(self) -> list[ImagePart]:
        return [img for m in self.messages for img in m.images]

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    @property
    def has_tool_history(self) -> bool:
        return any(
            m.role is Role.TOOL and any(isinstance(p, ToolResultPart) for p in m.content)
            for m in self.messages
        )
