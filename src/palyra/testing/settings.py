"""Global behaviour of a fake upstream; tests may change fields while it runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_OPENAI_MODELS = ("gpt-4o-mini", "gpt-4.1", "text-embedding-3-small", "whisper-1")
DEFAULT_ANTHROPIC_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5")
# The spellings of reasoning the OpenAI endpoint knows (kept beside openai_chat.REASONING_FIELDS,
# which this module cannot import without a cycle).
_REASONING_FIELDS = ("reasoning_content", "reasoning", "reasoning_details", "thinking_blocks")


@dataclass(slots=True)
class FakeSettings:
    """Every knob of the fake upstream. ``api_keys`` empty means any non-empty key is accepted."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail_rate: float = 0.0
    fail_status: int = 500
    rate_limit_rpm: int = 0
    stream_chunk_tokens: int = 1
    stream_chunk_delay_ms: float = 0.0
    api_keys: frozenset[str] = field(default=frozenset(), repr=False)
    cached_tokens: int = 0
    reasoning_content: bool = False
    """The OpenAI endpoint reasons, and says so in ``reasoning_content`` (as DeepSeek and vLLM
    do; OpenAI's own Chat Completions never returns reasoning text)."""
    responses_future_item: bool = False
    """``/v1/responses`` adds an item kind, a stream event type and a Response field no client
    knows yet (as a newer API version would; see ``palyra.testing.openai_builtin_tools``)."""
    reasoning_field: str = "reasoning_content"
    """The field that reasoning comes in (``openai_chat.REASONING_FIELDS``): ``reasoning_content``
    (DeepSeek, vLLM), ``reasoning`` (OpenRouter, newer vLLM), ``reasoning_details`` (OpenRouter,
    signed) or ``thinking_blocks`` (LiteLLM, signed)."""
    answer_extras: bool = False
    """The OpenAI endpoint adds fields Palyra does not model, as Azure OpenAI and newer API
    versions do: ``prompt_filter_results``, ``content_filter_results``, ``obfuscation``."""
    context_window: int = 128_000
    default_embedding_dimensions: int = 1536
    openai_models: tuple[str, ...] = DEFAULT_OPENAI_MODELS
    anthropic_models: tuple[str, ...] = DEFAULT_ANTHROPIC_MODELS

    def __post_init__(self) -> None:
        if not isinstance(self.api_keys, frozenset):
            keys: Iterable[str] = self.api_keys
            self.api_keys = frozenset(keys)
        self.check()

    def check(self) -> None:
        """Refuse values that would make the fake misbehave in ways nobody asked for."""
        problems: list[str] = []
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.stream_chunk_delay_ms < 0:
            problems.append("latency_ms, jitter_ms and stream_chunk_delay_ms must be >= 0")
        if not 0.0 <= self.fail_rate <= 1.0:
            problems.append(f"fail_rate must be between 0 and 1, got {self.fail_rate}")
        if not 400 <= self.fail_status <= 599:
            problems.append(
                f"fail_status must be an HTTP error status (400-599), got {self.fail_status}"
            )
        if self.rate_limit_rpm < 0:
            problems.append(
                f"rate_limit_rpm must be >= 0 (0 = unlimited), got {self.rate_limit_rpm}"
            )
        if self.stream_chunk_tokens < 1:
            problems.append(f"stream_chunk_tokens must be >= 1, got {self.stream_chunk_tokens}")
        if self.cached_tokens < 0 or self.context_window < 1:
            problems.append("cached_tokens must be >= 0 and context_window >= 1")
        if self.default_embedding_dimensions < 1:
            problems.append(
                "default_embedding_dimensions must be >= 1, "
                f"got {self.default_embedding_dimensions}"
            )
        if any(not m for m in (*self.openai_models, *self.anthropic_models)):
            problems.append("openai_models and anthropic_models must not contain an empty name")
        if self.reasoning_field not in _REASONING_FIELDS:
            problems.append(
                f"reasoning_field must be one of {', '.join(_REASONING_FIELDS)}, "
                f"got {self.reasoning_field!r}"
            )
        if any(not k for k in self.api_keys):
            problems.append("api_keys must not contain an empty key")
        if problems:
            raise ValueError("fake upstream settings: " + "; ".join(problems))

    def accepts_key(self, key: str) -> bool:
        return bool(key) and (not self.api_keys or key in self.api_keys)
