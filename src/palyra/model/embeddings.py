"""Embedding request and response types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from palyra.model.responses import Usage


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
