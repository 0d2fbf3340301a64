"""Every class of config error, with the exact message a user sees (file:line: key: message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from palyra.config import ConfigError, load_config
from palyra.providers.openai_compatible import KNOWN_QUIRK_NAMES

NO_HOME = {"HOME": "/nonexistent-palyra-home"}
EXAMPLE = Path(__file__).with_name("example_palyra.toml")

# Nine lines; the helpers add a blank line, so whatever follows starts on line 11.
PROVIDERS = """\
[[model_provider.providers]]
id = "openai-main"
kind = "openai"
api_key = "env:OPENAI_API_KEY"

[[model_provider.providers]]
id = "anthropic"
kind = "anthropic"
api_key = "vault:global/anthropic"
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(text: str) -> None:
    Path("palyra.toml").write_text(text)
    load_config(Path("palyra.toml"), NO_HOME)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return [str(p) for p in caught.value.problems]


def model(model_id: str, provider: str = "openai-main", extra: str = "") -> str:
    return f'[[model_provider.models]]\nid = "{model_id}"\nprovider = "{provider}"\n{extra}'


def with_models(*models: str) -> list[str]:
    return problems(PROVIDERS + "\n" + "".join(models))


def test_worked_example_from_the_architecture_loads_cleanly() -> None:
    loaded = load_config(EXAMPLE, NO_HOME)
    mp = loaded.config.model_provider
    assert [m.id for m in mp.models] == ["default", "claude", "embed", "whisper"]
    assert mp.models[0].fallbacks == ["claude"]
    assert mp.providers[0].auth_profile_id == "openai-default"
    assert loaded.provenance["model_provider.models[0].model"] == f"file:{EXAMPLE}:37"
    assert loaded.provenance["model_provider.models[0].aliases"] == "default"


def test_toml_syntax_error_gives_line_and_column() -> None:
    assert problems('[daemon]\nbind = "x"\nlog_level = \n') == [
        "palyra.toml:3: TOML syntax error at column 13: Invalid value; fix the syntax"
    ]


def test_unknown_key_suggests_a_close_match_or_lists_the_known_keys() -> None:
    assert problems('[daemon]\nbind = "127.0.0.1:1"\nlog_levl = "debug"\n') == [
        'palyra.toml:3: daemon.log_levl: unknown key "log_levl" (did you mean "log_level"?); '
        "rename or remove it"
    ]
    assert problems("[storage]\nflavour = 1\n") == [
        'palyra.toml:2: storage.flavour: unknown key "flavour" (known: redis_url, url); '
        "rename or remove it"
    ]


def test_unknown_key_in_an_array_of_tables_entry_points_at_its_line() -> None:
    assert with_models(model("default"), model("b", extra='fallback = ["default"]\n')) == [
        'palyra.toml:17: model_provider.models[1].fallback: unknown key "fallback" '
        '(did you mean "fallbacks"?); rename or remove it'
    ]


def test_bad_values_point_at_the_key_and_the_array_element() -> None:
    extra = 'context_window = 0\ncapabilities = ["chat", "telepathy"]\n'
    assert with_models(model("default", extra=extra)) == [
        "palyra.toml:14: model_provider.models[0].context_window: input should be greater "
        "than or equal to 1; fix the value",
        "palyra.toml:15: model_provider.models[0].capabilities[1]: input should be 'chat', "
        "'tools', 'vision', 'json', 'embeddings' or 'transcription'; fix the value",
    ]


def test_model_naming_a_missing_provider_lists_the_known_ones() -> None:
    assert with_models(model("default", provider="opnai")) == [
        'palyra.toml:13: model_provider.models[0].provider: model "default" names provider '
        '"opnai", which does not exist (known: openai-main, anthropic)'
    ]


def test_fallback_naming_a_missing_model_points_at_that_element() -> None:
    extra = 'fallbacks = [\n  "default",\n  "claud",\n]\n'
    assert with_models(model("default"), model("fast", extra=extra)) == [
        'palyra.toml:19: model_provider.models[1].fallbacks[1]: model "fast" falls back to '
        '"claud", which does not exist (known: default, fast)',
    ]


def test_fallbacks_may_name_an_alias() -> None:
    load(
        PROVIDERS
        + "\n"
        + model("default", extra='aliases = ["gpt"]\n')
        + model("b", extra='fallbacks = ["gpt"]\n')
    )


def test_duplicate_provider_and_model_ids_and_aliases() -> None:
    text = (
        PROVIDERS
        + '\n[[model_provider.providers]]\nid = "anthropic"\nkind = "anthropic"\n\n'
        + model("default", extra='aliases = ["fast"]\n')
        + model("default", provider="anthropic", extra='aliases = ["fast"]\n')
    )
    assert problems(text) == [
        'palyra.toml:12: model_provider.providers[2].id: provider id "anthropic" is already '
        "used by model_provider.providers[1]; give each provider its own id",
        'palyra.toml:20: model_provider.models[1].id: model id "default" is already used by '
        "model_provider.models[0]; give each model its own id",
        'palyra.toml:22: model_provider.models[1].aliases[0]: alias "fast" of model "default" '
        'clashes with alias "fast" of model "default"; each name must point at one model',
    ]


def test_default_chat_model_must_exist_when_models_are_set() -> None:
    assert with_models(model("fast")) == [
        'palyra.toml: model_provider.default_chat_model: default chat model "default" does '
        "not exist (known: fast); set default_chat_model to one of them"
    ]


def test_default_set_without_models_is_checked_against_the_built_in_models() -> None:
    assert problems('[model_provider]\ndefault_chat_model = "nope"\n') == [
        'palyra.toml:2: model_provider.default_chat_model: default chat model "nope" does not '
        "exist (known: default, embed, whisper); set default_chat_model to one of them"
    ]


def test_unset_embeddings_default_is_not_required_for_a_chat_only_config() -> None:
    load(PROVIDERS + "\n" + model("default"))


def test_default_model_must_have_the_matching_capability() -> None:
    text = PROVIDERS + '\n[model_provider]\ndefault_embeddings_model = "default"\n\n'
    assert problems(text + model("default")) == [
        "palyra.toml:12: model_provider.default_embeddings_model: default embeddings model "
        '"default" cannot do embeddings (its capabilities: chat); add "embeddings" to its '
        "capabilities or pick another model"
    ]


def test_fallback_self_loop_is_a_cycle() -> None:
    assert with_models(model("default", extra='fallbacks = ["default"]\n')) == [
        "palyra.toml:14: model_provider.models[0].fallbacks: fallback cycle: "
        "default -> default; remove one of these fallbacks"
    ]


def test_longer_fallback_cycle_is_printed_in_full() -> None:
    assert with_models(
        model("default", extra='fallbacks = ["b"]\n'),
        model("b", extra='fallbacks = ["c"]\n'),
        model("c", extra='fallbacks = ["default"]\n'),
    ) == [
        "palyra.toml:14: model_provider.models[0].fallbacks: fallback cycle: "
        "default -> b -> c -> default; remove one of these fallbacks"
    ]


def test_capability_the_provider_kind_cannot_serve() -> None:
    extra = 'capabilities = ["chat", "embeddings"]\n'
    assert with_models(model("default"), model("vec", provider="anthropic", extra=extra)) == [
        'palyra.toml:17: model_provider.models[1].capabilities[1]: model "vec" asks for '
        'embeddings, which provider "anthropic" (kind anthropic) cannot serve; move the model '
        "to a provider that can (openai, openai_compatible) or drop the capability"
    ]


def test_api_responses_on_a_provider_kind_without_it() -> None:
    extra = 'api = "responses"\n'
    assert with_models(model("default", extra=extra), model("c", "anthropic", extra)) == [
        'palyra.toml:18: model_provider.models[1].api: models c say api = "responses", but '
        'their provider "anthropic" (kind anthropic) has no Responses API (only kind openai '
        "has); remove api from those [[model_provider.models]] in palyra.toml"
    ]


def test_literal_api_key_is_refused_without_printing_it() -> None:
    secret = "sk-live-abcdef0123456789"
    text = f'[[model_provider.providers]]\nid = "openai"\nkind = "openai"\napi_key = "{secret}"\n'
    found = problems(text)
    assert found == [
        'palyra.toml:4: model_provider.providers[0].api_key: provider "openai" has a literal API '
        "key; config files hold references only. Store the key with `palyra vault put "
        'global/openai` and set api_key = "vault:global/openai" (or "env:NAME" / "file:PATH")'
    ]
    assert "abcdef0123456789" not in "\n".join(found)


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("env:", "env: references name a variable, e.g. env:OPENAI_API_KEY"),
        (
            "vault:openai",
            "vault: references are <scope>/<name> with scope global, agent:<id> or "
            "profile:<id>, e.g. vault:global/openai",
        ),
        ("file: ", "file: references name a path, e.g. file:/run/secrets/openai"),
    ],
)
def test_malformed_secret_reference_says_the_right_shape(reference: str, why: str) -> None:
    text = f'[[model_provider.providers]]\nid = "o"\nkind = "openai"\napi_key = "{reference}"\n'
    assert problems(text) == [
        f'palyra.toml:4: model_provider.providers[0].api_key: provider "o" api_key is '
        f"malformed: {why}"
    ]


def test_api_key_and_auth_profile_together_are_refused() -> None:
    text = (
        '[[model_provider.providers]]\nid = "o"\nkind = "openai"\n'
        'auth_profile_id = "p"\napi_key = "env:K"\n'
    )
    assert problems(text) == [
        'palyra.toml:5: model_provider.providers[0].api_key: provider "o" sets both api_key '
        "and auth_profile_id; keep one (an auth profile rotates and refreshes credentials, "
        "api_key is fixed)"
    ]


def _provider_with(base_url: str, allow: bool = False) -> str:
    allow_line = "allow_private_base_url = true\n" if allow else ""
    return (
        f'[[model_provider.providers]]\nid = "local"\nkind = "openai_compatible"\n'
        f'base_url = "{base_url}"\n{allow_line}'
    )


def test_plain_http_to_a_remote_host_is_refused() -> None:
    assert problems(_provider_with("http://llm.example.com/v1")) == [
        "palyra.toml:4: model_provider.providers[0].base_url: provider 'local': base URL "
        "'http://llm.example.com/v1' uses plain http; use https (http is only allowed to "
        "loopback hosts, or to a private IP literal with allow_private_base_url = true)"
    ]


def test_private_address_needs_allow_private_base_url() -> None:
    assert problems(_provider_with("https://10.0.0.5/v1")) == [
        "palyra.toml:4: model_provider.providers[0].base_url: provider 'local': base URL "
        "'https://10.0.0.5/v1' points at 10.0.0.5, a private address; if this upstream really "
        "lives on your network, set allow_private_base_url = true on the provider in palyra.toml"
    ]
    load(_provider_with("http://10.0.0.5/v1", allow=True))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1",
        "http://localhost:11434/v1",
        "http://[::1]:9/v1",
        "http://[::ffff:127.0.0.1]:8000/v1",  # loopback to the runtime guard too
    ],
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    load(_provider_with(url))


def test_base_url_without_a_host_is_refused() -> None:
    assert problems(_provider_with("api.openai.com/v1")) == [
        "palyra.toml:4: model_provider.providers[0].base_url: provider 'local': base URL "
        "'api.openai.com/v1' is not an absolute http(s) URL (no scheme); write it like "
        "https://api.openai.com/v1"
    ]


@pytest.mark.parametrize(
    ("url", "allow", "fragment"),
    [
        # Plain http with the private opt-in: only to a non-public IP literal.
        ("http://llm.internal.example/v1", True, "uses plain http"),
        ("http://8.8.8.8/v1", True, "uses plain http"),
        # IPv4 that parsers read differently: refused, never resolved.
        ("https://0251.0376.0251.0376/v1", False, "not written as four decimal numbers"),
        ("https://0x7f.1/v1", False, "not written as four decimal numbers"),
        ("https://2130706433/v1", False, "not written as four decimal numbers"),
        ("https://10.0.0.256/v1", False, "not written as four decimal numbers"),
        # The runtime guard's classes, now refused by the check as well.
        ("https://100.64.0.1/v1", False, "100.64.0.1, a CGNAT address"),
        ("https://224.0.0.1/v1", False, "a multicast address"),
        ("https://[ff02::1]/v1", False, "a multicast address"),
        ("https://[64:ff9b::a00:1]/v1", False, "a private address"),
        ("https://[2002:a00:1::]/v1", False, "a private address"),
        ("https://[2002:7f00:1::]/v1", False, "a tunnelled loopback address"),
        ("https://[2001::1]/v1", False, "a Teredo tunnel address"),
        ("https://0.0.0.0/v1", False, "an unspecified address"),
        # Credentials belong in the vault.
        ("https://user:hunter2pass@api.example.com/v1", False, "credentials belong in the vault"),
        ("https://user:hunter2pass@10.0.0.5/v1", True, "credentials belong in the vault"),
        # What the URL parser itself refuses.
        ("http://[::1/v1", False, "is not a valid URL"),
        ("https://api.example.com:99999/v1", False, "an invalid port"),
        ("ftp://files.example.com/v1", False, "it uses ftp://"),
    ],
)
def test_check_refuses_what_start_up_refuses(url: str, allow: bool, fragment: str) -> None:
    found = problems(_provider_with(url, allow=allow))
    assert len(found) == 1, found
    assert found[0].startswith("palyra.toml:4: model_provider.providers[0].base_url: ")
    assert fragment in found[0]
    assert "hunter2pass" not in found[0]


def test_unknown_quirks_are_refused_with_the_closest_known_one() -> None:
    found = problems(_provider_with("https://api.example.com/v1") + 'quirks = ["olama"]\n')
    assert found == [
        'palyra.toml:5: model_provider.providers[0].quirks: provider "local" quirks: unknown '
        f"quirk 'olama' (did you mean 'ollama'?); known quirks: {', '.join(KNOWN_QUIRK_NAMES)}; "
        "fix quirks in [[model_provider.providers]] of palyra.toml"
    ]


def test_an_openai_compatible_provider_without_base_url_is_refused() -> None:
    text = '[[model_provider.providers]]\nid = "local"\nkind = "openai_compatible"\n'
    assert problems(text) == [
        'palyra.toml:1: model_provider.providers[0].base_url: provider "local" (kind '
        "openai_compatible) has no base_url; set base_url to the server's OpenAI-style API root "
        '(e.g. "http://127.0.0.1:11434/v1") in [[model_provider.providers]] of palyra.toml'
    ]


def test_literal_client_token_is_refused() -> None:
    assert problems('[daemon]\nclient_tokens = ["env:T", "plain-token-value"]\n') == [
        "palyra.toml:2: daemon.client_tokens[1]: client token is a literal value; config files "
        "hold references only. Store it with `palyra vault put global/client-token` and list "
        '"vault:global/client-token" (or "env:PALYRA_CLIENT_TOKEN"), or use `palyra token create`'
    ]


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = (
        '[daemon]\nbnd = "x"\n\n'
        "[model_provider]\nmax_retries = 99\n\n"
        '[[model_provider.providers]]\nid = "o"\nkind = "openai"\napi_key = "literal"\n\n'
        + model("default", provider="nope", extra='fallbacks = ["default", "gone"]\n')
    )
    found = problems(text)
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["palyra.toml:2", "daemon.bnd"],
        ["palyra.toml:5", "model_provider.max_retries"],
        ["palyra.toml:10", "model_provider.providers[0].api_key"],
        ["palyra.toml:14", "model_provider.models[0].provider"],
        ["palyra.toml:15", "model_provider.models[0].fallbacks[1]"],
        ["palyra.toml:15", "model_provider.models[0].fallbacks"],
    ]
    assert "fallback cycle: default -> default" in found[-1]
