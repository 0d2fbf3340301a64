"""Embedding request and response types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from palyra.model.responses import Usage

KNOWN_MAX_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""The largest ``dimensions`` each known OpenAI embedding model returns (its native size)."""
DEFAULT_MAX_DIMENSIONS = 16384
"""For a model neither known nor configured: more than any embedding model offers today, far
less than a number that makes an upstream allocate without bound."""


def max_dimensions_for(upstream_model: str, configured: int | None) -> int:
    """A model's ``dimensions`` ceiling: its ``max_dimensions`` setting, else the known size of
    the upstream model (matched after any ``vendor/`` prefix), else the default."""
    if configured is not None:
        return configured
    known = KNOWN_MAX_DIMENSIONS.get(upstream_model.rsplit("/", 1)[-1])
    return known if known is not None else DEFAULT_MAX_DIMENSIONS


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    inputs: list[str] = Field(min_length=1)
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class EmbeddingResponse(BaseModel):
    """Vectors in input order. Base64 output is decoded to floats at the provider edge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    vectors: list[list[float]]
    usage: Usage = Field(default_factory=Usage)
