"""Config quirk names -> ``OpenAIQuirks``: presets, single switches, combinations, bad names."""

from __future__ import annotations

import pytest

from palyra.providers.openai import OpenAIQuirks
from palyra.providers.openai_compatible import KNOWN_QUIRK_NAMES, PRESETS, quirks_from_names


def test_no_names_is_plain_openai_plus_top_k() -> None:
    assert quirks_from_names([]) == OpenAIQuirks(top_k=True)
    assert OpenAIQuirks().top_k is False  # OpenAI itself has no top_k


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_name_gives_its_preset(name: str) -> None:
    assert quirks_from_names([name]) == PRESETS[name]
    assert PRESETS[name] != OpenAIQuirks()


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("no-stream-usage", "stream_usage"),
        ("no-strict-schemas", "strict_schemas"),
        ("no-developer-role", "developer_role"),
        ("max-tokens", "max_completion_tokens"),
        ("no-parallel-tool-calls", "parallel_tool_calls"),
        ("no-json-schema", "response_format_json_schema"),
        ("no-json-object", "response_format_json_object"),
        ("no-metadata", "metadata"),
        ("no-message-names", "message_names"),
        ("no-top-k", "top_k"),
    ],
)
def test_each_switch_turns_off_one_field(name: str, field: str) -> None:
    quirks = quirks_from_names([name])
    assert getattr(quirks, field) is False
    assert quirks == OpenAIQuirks(**{"top_k": True, field: False})


def test_presets_and_switches_combine_all_their_limits() -> None:
    quirks = quirks_from_names(["lmstudio", "groq", "NO-STRICT-SCHEMAS"])
    assert not quirks.response_format_json_object  # from lmstudio
    assert not quirks.message_names  # from groq
    assert not quirks.strict_schemas  # switch, case-insensitive
    assert quirks.parallel_tool_calls


def test_unknown_name_lists_every_known_one() -> None:
    with pytest.raises(ValueError) as info:
        quirks_from_names(["vllm", "no-such-quirk"], where="palyra.toml: provider 'local'")
    message = str(info.value)
    assert message.startswith("palyra.toml: provider 'local': unknown quirk 'no-such-quirk'")
    assert all(name in message for name in KNOWN_QUIRK_NAMES)
