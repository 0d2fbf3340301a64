"""``OpenAIQuirks``: what an OpenAI-compatible server does differently from OpenAI itself.

Every switch defaults to OpenAI's own behaviour, so ``OpenAIQuirks()`` is plain OpenAI. Named
presets and config names live in :mod:`palyra.providers.openai_compatible`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenAIQuirks:
    """Payload switches; ``True`` means "the server accepts what OpenAI accepts".

    - ``stream_usage``: send ``stream_options: {include_usage: true}`` on streams; off for servers
      that reject the field (usage then comes only if the server volunteers it).
    - ``strict_schemas``: pass ``strict`` on function tools and JSON schemas; off drops it.
    - ``developer_role``: send the ``developer`` role; off maps it to ``system`` (many chat
      templates know only system/user/assistant/tool and fail on anything else).
    - ``max_completion_tokens``: send the output cap as ``max_completion_tokens``; off uses the
      older ``max_tokens`` that most compatible servers read.
    - ``parallel_tool_calls``: send ``parallel_tool_calls``; off omits it.
    - ``response_format_json_schema``: send ``json_schema`` response formats; off degrades them
      to ``json_object`` plus a system message carrying the schema.
    - ``response_format_json_object``: send ``json_object``; off sends a ``json_schema`` that
      accepts any object instead (for servers that only know schemas).
    - ``metadata``: send ``metadata``; off omits it (stored-completion metadata is OpenAI's).
    - ``message_names``: send a message's ``name``; off omits it.
    - ``top_k``: send ``top_k``, which OpenAI itself lacks (so it is off here, and a request
      with ``top_k`` is refused naming it); OpenAI-compatible servers start with it on
      (:data:`palyra.providers.openai_compatible.COMPATIBLE`).
    """

    stream_usage: bool = True
    strict_schemas: bool = True
    developer_role: bool = True
    max_completion_tokens: bool = True
    parallel_tool_calls: bool = True
    response_format_json_schema: bool = True
    response_format_json_object: bool = True
    metadata: bool = True
    message_names: bool = True
    top_k: bool = False

    def restrict(self, other: OpenAIQuirks) -> OpenAIQuirks:
        """Both sets of limits at once: a switch stays on only if it is on in both."""
        return OpenAIQuirks(
            **{
                name: getattr(self, name) and getattr(other, name)
                for name in OpenAIQuirks.__dataclass_fields__
            }
        )
