"""VaultRef parsing: the accepted forms and what each parse error says."""

from __future__ import annotations

import pytest

from palyra.vault import InvalidVaultRef, VaultRef


@pytest.mark.parametrize(
    ("text", "scope", "name"),
    [
        ("global/openai", "global", "openai"),
        ("vault:global/openai", "global", "openai"),
        ("agent:ops/api_key", "agent:ops", "api_key"),
        ("vault:profile:openai-default/refresh.token", "profile:openai-default", "refresh.token"),
    ],
)
def test_parse_accepts_both_forms_and_all_scopes(text: str, scope: str, name: str) -> None:
    ref = VaultRef.parse(text)
    assert (ref.scope, ref.name) == (scope, name)
    assert str(ref) == f"{scope}/{name}"
    assert ref.uri == f"vault:{scope}/{name}"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("openai", "no '/' between scope and name"),
        ("global/a/b", "more than one '/'"),
        ("team:x/key", "unknown scope 'team:x'"),
        ("agent/key", "unknown scope 'agent'"),
        ("agent:/key", "the agent id '' must be"),
        ("global/" + "k" * 129, "must be 1-128 characters"),
        ("global/has space", "the name 'has space'"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidVaultRef) as err:
        VaultRef.parse(text)
    assert says in str(err.value)
