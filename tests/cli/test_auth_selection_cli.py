"""``auth profiles explain-selection`` and ``order`` take the provider ids of palyra.toml (and a
kind where it names one provider), and explain the credential routing would really use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app
from palyra.testing import FakeUpstream

KEY = "sk-selection-cli-4e1f0a9c7b"
ENV_KEY = "sk-selection-env-8d2b6c1e"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys=frozenset({KEY})) as upstream:
        yield upstream


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(path))
    for var in ("PALYRA_VAULT_KEY", "PALYRA_VAULT_PASSPHRASE", "PALYRA_CONFIG", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return path


def write_config(tmp_path: Path, *providers: str) -> Path:
    path = tmp_path / "palyra.toml"
    blocks = "".join(f"\n[[model_provider.providers]]\n{p}\n" for p in providers)
    path.write_text(f"version = 1\n{blocks}")
    return path


def cli(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["auth", *args, "--config", str(config)], input=input)


def connect(fake: FakeUpstream, config: Path, *profiles: str) -> None:
    for pid in profiles:
        url = fake.openai_base_url
        done = cli(config, "openai", "api-key", "--profile", pid, "--base-url", url, input=KEY)
        assert done.exit_code == 0, done.stderr


def test_a_provider_keyed_from_the_environment_is_explained_as_such(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path, 'id = "openai"\nkind = "openai"\napi_key = "env:OPENAI_API_KEY"'
    )
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    explained = cli(config, "profiles", "explain-selection", "openai")
    assert explained.exit_code == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[0] == "openai (openai): api_key env:OPENAI_API_KEY"
    assert "from palyra.toml resolves; auth profiles are not used for it" in lines[1]
    assert "no usable" not in explained.stdout
    assert ENV_KEY not in explained.stdout + explained.stderr
    assert not (state / "palyra.db").exists()  # an env key needs no store
    as_json = json.loads(cli(config, "profiles", "explain-selection", "openai", "--json").stdout)
    assert (as_json["source"], as_json["usable"]) == ("api_key", True)

    monkeypatch.delenv("OPENAI_API_KEY")
    missing = cli(config, "profiles", "explain-selection", "openai")
    assert missing.exit_code == 1
    assert missing.stdout.splitlines()[0] == "openai (openai): no usable credential"
    assert "environment variable OPENAI_API_KEY is not set; export it" in missing.stdout


def test_a_vault_reference_is_checked_in_the_vault(tmp_path: Path, state: Path) -> None:
    config = write_config(tmp_path, 'id = "ant"\nkind = "anthropic"\napi_key = "vault:global/ant"')
    absent = cli(config, "profiles", "explain-selection", "ant")
    assert absent.exit_code == 1 and "global/ant" in absent.stdout
    stored = CliRunner().invoke(
        app, ["vault", "put", "global/ant", "--config", str(config)], input=KEY
    )
    assert stored.exit_code == 0, stored.stderr
    present = cli(config, "profiles", "explain-selection", "ant")
    assert present.exit_code == 0
    assert present.stdout.startswith("ant (anthropic): api_key vault:global/ant\n")
    assert KEY not in present.stdout


def test_named_profiles_are_explained_in_the_config_order_and_order_says_where_to_change_it(
    fake: FakeUpstream, tmp_path: Path, state: Path
) -> None:
    config = write_config(
        tmp_path,
        'id = "main"\nkind = "openai"\nauth_profile_ids = ["ghost", "b", "a"]',
    )
    connect(fake, config, "a", "b")
    explained = cli(config, "profiles", "explain-selection", "main")
    assert explained.exit_code == 0, explained.stderr
    assert explained.stdout.splitlines() == [
        "main (openai): b",
        "  - ghost: no such profile; create it with: palyra auth openai api-key --profile ghost",
        "  * b: chosen: first usable of the profiles palyra.toml names",
        "  + a: usable, tried after b (position 3)",
    ]
    refused = cli(config, "profiles", "order", "main", "a", "b")
    assert refused.exit_code == 1
    assert 'provider "main" names its profiles in palyra.toml (ghost, b, a)' in refused.stderr


def test_a_provider_spreading_requests_over_its_profiles_says_how(
    fake: FakeUpstream, tmp_path: Path, state: Path
) -> None:
    config = write_config(
        tmp_path,
        'id = "main"\nkind = "openai"\nauth_profile_ids = ["a", "b"]\n'
        'profile_selection = "rate_limit"',
    )
    connect(fake, config, "a", "b")
    explained = cli(config, "profiles", "explain-selection", "main")
    assert explained.exit_code == 0, explained.stderr
    assert explained.stdout.splitlines()[-1] == (
        "  profile_selection = rate_limit: the usable profile with the largest share of its rate "
        "limit left (from the x-ratelimit-* / anthropic-ratelimit-* headers of its last answer) "
        "goes first; one never read or past its reset counts as full, ties keep this order, a "
        "429 empties a profile until its retry-after"
    )
    as_json = json.loads(cli(config, "profiles", "explain-selection", "main", "--json").stdout)
    assert as_json["profile_selection"] == "rate_limit"
    config.write_text(config.read_text().replace('"rate_limit"', '"round_robin"'))
    explained = cli(config, "profiles", "explain-selection", "main")
    assert "profile_selection = round_robin: each request starts one usable profile further " in (
        explained.stdout
    )


def test_a_kind_naming_one_provider_and_that_provider_id_order_and_explain_alike(
    fake: FakeUpstream, tmp_path: Path, state: Path
) -> None:
    config = write_config(tmp_path, 'id = "openai-main"\nkind = "openai"')
    connect(fake, config, "first", "second")
    ordered = cli(config, "profiles", "order", "openai-main", "second")
    assert (ordered.exit_code, ordered.stdout) == (0, "order: second, first\n")
    by_id = cli(config, "profiles", "explain-selection", "openai-main")
    by_kind = cli(config, "profiles", "explain-selection", "openai")
    assert by_id.exit_code == by_kind.exit_code == 0
    assert by_id.stdout == by_kind.stdout
    assert by_id.stdout.splitlines()[0] == "openai-main (openai): second"
    assert "  + first: usable, ranked after second" in by_id.stdout


def test_a_provider_with_no_credential_at_all(tmp_path: Path, state: Path) -> None:
    config = write_config(
        tmp_path,
        'id = "bare"\nkind = "openai"',
        'id = "local"\nkind = "openai_compatible"\nbase_url = "http://127.0.0.1:9/v1"',
    )
    bare = cli(config, "profiles", "explain-selection", "bare")
    assert bare.exit_code == 1
    assert 'set api_key = "env:NAME" on provider "bare" in palyra.toml' in bare.stdout
    local = cli(config, "profiles", "explain-selection", "local")
    assert local.exit_code == 0
    assert "requests are sent without a key" in local.stdout


def test_ambiguous_and_unknown_names_are_usage_errors(tmp_path: Path, state: Path) -> None:
    config = write_config(tmp_path, 'id = "one"\nkind = "openai"', 'id = "two"\nkind = "openai"')
    ambiguous = cli(config, "profiles", "explain-selection", "openai")
    assert ambiguous.exit_code == 2
    assert "several providers in palyra.toml (one, two); name one of them" in ambiguous.stderr
    unknown = cli(config, "profiles", "order", "gemini", "x")
    assert unknown.exit_code == 2
    assert "unknown provider 'gemini'; use a provider id from palyra.toml (there: one, two)" in (
        unknown.stderr
    )
