"""The neutral chat response and its usage, whatever provider produced it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from palyra.model.extensions import Extensions
from palyra.model.messages import ReasoningPart, ToolCallPart

FinishReason = Literal["stop", "stop_sequence", "length", "tool_calls", "content_filter", "error"]
"""``stop_sequence``: one of the request's stop sequences ended the answer (the response's
``stop_sequence`` says which); OpenAI reports it as ``stop``."""
UsageSource = Literal["provider", "estimated"]


class Usage(BaseModel):
    """Token counts. ``source`` says whether the provider reported them or we estimated.

    ``input_tokens`` counts all input, cached reads (``cached_input_tokens``) and cache writes
    (``cache_creation_input_tokens``) included. Anthropic splits the writes by cache lifetime:
    ``cache_creation_5m_input_tokens`` + ``cache_creation_1h_input_tokens`` (``ephemeral_5m`` /
    ``ephemeral_1h``, priced differently) make up ``cache_creation_input_tokens``; both are None
    when the upstream did not split them (then the writes are the default 5-minute kind).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_creation_input_tokens: int = Field(default=0, ge=0)
    cache_creation_5m_input_tokens: int | None = Field(default=None, ge=0)
    cache_creation_1h_input_tokens: int | None = Field(default=None, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    source: UsageSource = "provider"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class TopLogprob(BaseModel):
    """One of the likeliest tokens at a position, with its log probability."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    """A token of the answer, its log probability and the alternatives asked for."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class Logprobs(BaseModel):
    """Log probabilities of the answer's tokens (OpenAI's ``logprobs``): of its text, and of its
    refusal when it refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None

    def __add__(self, other: Logprobs) -> Logprobs:
        """Two runs of tokens, one after the other (stream chunks folded into an answer)."""

        def join(
            a: list[TokenLogprob] | None, b: list[TokenLogprob] | None
        ) -> list[TokenLogprob] | None:
            return b if a is None else a if b is None else [*a, *b]

        return Logprobs(
            content=join(self.content, other.content), refusal=join(self.refusal, other.refusal)
        )


class ChatResponse(BaseModel):
    """A finished chat answer: reasoning, text, tool calls, a normalised finish reason and
    usage. ``reasoning`` comes before the text, in the order the upstream sent it, signatures
    kept; ``stop_sequence`` is the stop sequence that ended the answer, if one did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    model: str
    reasoning: list[ReasoningPart] = Field(default_factory=list)
    content: str = ""
    tool_calls: list[ToolCallPart] = Field(default_factory=list)
    finish_reason: FinishReason = "stop"
    stop_sequence: str | None = None
    usage: Usage = Field(default_factory=Usage)
    provider: str | None = None
    created: int | None = None
    system_fingerprint: str | None = None
    logprobs: Logprobs | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """The upstream answer's headers a client reads (rate limits, request id, retry-after)."""
    extensions: Extensions | None = None
    """The answer's top-level fields the contract does not model, for a client of its API."""
    message_extensions: Extensions | None = None
    """Likewise for the answer's message (OpenAI's ``choices[0].message``)."""
    choice_extensions: Extensions | None = None
    """The answer's first choice's fields the contract does not model (Azure's
    ``content_filter_results``, ...), for a client of its API."""
    other_choices: Extensions | None = None
    """The choices after the first (OpenAI ``n > 1``), as the upstream sent them
    (``fields["choices"]``): the contract's answer is the first choice; a client of the same API
    gets every one, index kept."""
    usage_extensions: Extensions | None = None
    """The upstream's usage object as it sent it (``fields["usage"]``), when it holds counts
    :class:`Usage` does not model (OpenAI ``audio_tokens``, ``accepted_prediction_tokens``;
    Anthropic ``server_tool_use``), for a client of its API."""
    content_blocks: Extensions | None = None
    """The answer's content blocks exactly as the upstream sent them (``fields["content"]``),
    when they hold what the fields above cannot: blocks of types the contract does not model
    (Anthropic ``server_tool_use``, ``web_search_tool_result``), or block fields such as a text
    block's ``citations``. A client of the same API gets them in their order; the fields above
    still hold the answer's text, calls and reasoning for everyone else."""
    service_tier: str | None = None
    """The tier that served the answer, in OpenAI's words (``default``, ``priority``, ``flex``...);
    Anthropic's ``standard`` is ``default`` here."""
