"""The OpenAI adapter: pure Chat Completions/embeddings/transcription mapping plus the HTTP provider."""

from palyra.providers.openai.payload import (
    DEFAULT_SCHEMA_NAME,
    TOOL_ERROR_PREFIX,
    build_openai_chat_payload,
    build_openai_embeddings_payload,
    build_openai_transcription_form,
    schema_instruction,
)
from palyra.providers.openai.provider import DEFAULT_OPENAI_BASE_URL, OpenAIProvider
from palyra.providers.openai.quirks import OpenAIQuirks
from palyra.providers.openai.response import (
    finish_reason,
    parse_openai_chat_response,
    parse_openai_embeddings_response,
    parse_openai_models,
    usage_from_openai,
)
from palyra.providers.openai.stream import OpenAIStreamParser
from palyra.providers.openai.transcription import parse_openai_transcription

__all__ = [
    "DEFAULT_OPENAI_BASE_URL",
    "DEFAULT_SCHEMA_NAME",
    "TOOL_ERROR_PREFIX",
    "OpenAIProvider",
    "OpenAIQuirks",
    "OpenAIStreamParser",
    "build_openai_chat_payload",
    "build_openai_embeddings_payload",
    "build_openai_transcription_form",
    "finish_reason",
    "parse_openai_chat_response",
    "parse_openai_embeddings_response",
    "parse_openai_models",
    "parse_openai_transcription",
    "schema_instruction",
    "usage_from_openai",
]
