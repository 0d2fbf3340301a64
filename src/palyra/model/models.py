"""What a model is and can do, as providers report it and routing reads it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Capability = Literal["chat", "tools", "vision", "json", "embeddings", "transcription"]


class ModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    provider: str
    owned_by: str | None = None
    created: int | None = None
    context_window: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    capabilities: frozenset[Capability] = frozenset()
    display_name: str | None = None


class TokenCount(BaseModel):
    """An input token count; ``estimated`` is true unless the provider or an exact tokenizer gave it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    input_tokens: int = Field(ge=0)
    estimated: bool
