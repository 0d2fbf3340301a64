"""OpenAI-compatible servers: named quirk presets, config quirk names, and the provider kind.

Presets record what each server is known to reject or ignore; a config may combine presets and
single switches (``quirks = ["vllm", "no-metadata"]``), and every named limit applies.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import ClassVar

from palyra.providers.openai.provider import OpenAIProvider
from palyra.providers.openai.quirks import OpenAIQuirks

COMPATIBLE = OpenAIQuirks(top_k=True)
"""Where every OpenAI-compatible server starts: OpenAI's switches, plus ``top_k`` (vLLM, Ollama,
LM Studio, OpenRouter and most local servers read it)."""

PRESETS: dict[str, OpenAIQuirks] = {
    # vLLM: chat templates often reject the developer role; older releases read only max_tokens.
    "vllm": OpenAIQuirks(
        top_k=True, developer_role=False, max_completion_tokens=False, metadata=False
    ),
    # Ollama: template roles only, max_tokens, ignores strict and parallel_tool_calls.
    "ollama": OpenAIQuirks(
        top_k=True,
        developer_role=False,
        max_completion_tokens=False,
        parallel_tool_calls=False,
        strict_schemas=False,
        metadata=False,
    ),
    # LM Studio: structured output only through json_schema (json_object is rejected); older
    # releases do not accept stream_options.
    "lmstudio": OpenAIQuirks(
        top_k=True,
        developer_role=False,
        max_completion_tokens=False,
        response_format_json_object=False,
        stream_usage=False,
        metadata=False,
    ),
    # Groq: rejects a message 'name' and OpenAI's stored-completion metadata; json_schema only on
    # some models, so schemas travel as instructions with json_object.
    "groq": OpenAIQuirks(
        top_k=True,
        developer_role=False,
        message_names=False,
        metadata=False,
        response_format_json_schema=False,
    ),
    # OpenRouter: forwards to many backends, so send the widely read forms.
    "openrouter": OpenAIQuirks(
        top_k=True, developer_role=False, max_completion_tokens=False, metadata=False
    ),
}

SWITCHES: dict[str, str] = {
    "no-stream-usage": "stream_usage",
    "no-strict-schemas": "strict_schemas",
    "no-developer-role": "developer_role",
    "max-tokens": "max_completion_tokens",
    "no-parallel-tool-calls": "parallel_tool_calls",
    "no-json-schema": "response_format_json_schema",
    "no-json-object": "response_format_json_object",
    "no-metadata": "metadata",
    "no-message-names": "message_names",
    "no-top-k": "top_k",
}

KNOWN_QUIRK_NAMES: tuple[str, ...] = (*PRESETS, *SWITCHES)


def quirks_from_names(names: list[str], *, where: str = "quirks") -> OpenAIQuirks:
    """Combine presets and single switches; an unknown name is a ``ValueError`` listing all."""
    quirks = COMPATIBLE
    for name in names:
        key = name.strip().lower()
        if key in PRESETS:
            quirks = quirks.restrict(PRESETS[key])
        elif key in SWITCHES:
            quirks = replace(quirks, **{SWITCHES[key]: False})
        else:
            close = difflib.get_close_matches(key, KNOWN_QUIRK_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where}: unknown quirk {name!r}{hint}; known quirks: "
                f"{', '.join(KNOWN_QUIRK_NAMES)}"
            )
    return quirks


class OpenAICompatibleProvider(OpenAIProvider):
    """The OpenAI provider pointed at another server, with that server's quirks."""

    kind: ClassVar[str] = "openai_compatible"
