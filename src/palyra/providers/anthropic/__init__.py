"""The Anthropic Messages API adapter: pure payload/response/stream mapping plus the HTTP provider."""

from palyra.providers.anthropic.payload import (
    PLACEHOLDER_USER_TEXT,
    anthropic_tool_id,
    build_anthropic_count_tokens_payload,
    build_anthropic_messages_payload,
    json_instruction,
)
from palyra.providers.anthropic.provider import (
    DEFAULT_ANTHROPIC_BASE_URL,
    DEFAULT_ANTHROPIC_VERSION,
    AnthropicProvider,
)
from palyra.providers.anthropic.response import (
    finish_reason,
    parse_anthropic_message,
    parse_anthropic_models,
    parse_anthropic_token_count,
    usage_from_anthropic,
)
from palyra.providers.anthropic.stream import AnthropicStreamParser

__all__ = [
    "DEFAULT_ANTHROPIC_BASE_URL",
    "DEFAULT_ANTHROPIC_VERSION",
    "PLACEHOLDER_USER_TEXT",
    "AnthropicProvider",
    "AnthropicStreamParser",
    "anthropic_tool_id",
    "build_anthropic_count_tokens_payload",
    "build_anthropic_messages_payload",
    "finish_reason",
    "json_instruction",
    "parse_anthropic_message",
    "parse_anthropic_models",
    "parse_anthropic_token_count",
    "usage_from_anthropic",
]
