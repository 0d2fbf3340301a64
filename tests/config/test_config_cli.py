"""``palyra config check|show|path`` through the real Typer app: exit codes, output, no secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palyra.cli.main import app

EXAMPLE = Path(__file__).with_name("example_palyra.toml")
SECRET = "sk-proj-Zq8Xv2Lm9Tn4Rb7Yc1"
PASSWORD = "pgPassw0rdXyz"

SECRETISH = f"""\
[daemon]
client_tokens = ["env:PALYRA_CLIENT_TOKEN"]

[storage]
url = "postgresql+asyncpg://palyra:{PASSWORD}@db.internal/palyra"
redis_url = "redis://:{PASSWORD}@cache.internal:6379/0"

[[model_provider.providers]]
id = "gw"
kind = "openai_compatible"
base_url = "https://gw.example.com/v1"
api_key = "vault:global/gw"
headers = {{ Authorization = "Bearer {SECRET}", X-Trace = "on", X-Debug = "{SECRET}" }}

[[model_provider.models]]
id = "default"
provider = "gw"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("PALYRA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["config", *args])
    return result.exit_code, result.stdout, result.stderr


def test_check_with_no_file_reports_the_built_in_defaults(home: Path) -> None:
    assert run("check") == (0, "OK: 1 provider, 3 models, 0 agents (built-in defaults)\n", "")


def test_check_of_the_worked_example_counts_providers_models_and_agents(home: Path) -> None:
    (home / "state" / "agents.toml").write_text('[[agents]]\nid = "a"\nmodel = "claude"\n')
    assert run("check", "--config", str(EXAMPLE)) == (
        0,
        f"OK: 2 providers, 4 models, 1 agent ({EXAMPLE})\n",
        "",
    )


def test_check_prints_every_problem_to_stderr_and_exits_1(home: Path) -> None:
    path = home / "bad.toml"
    path.write_text(
        '[daemon]\nbnd = "x"\n\n[[model_provider.providers]]\nid = "o"\nkind = "openai"\n'
        f'api_key = "{SECRET}"\n\n[[model_provider.models]]\nid = "default"\nprovider = "opnai"\n'
    )
    code, out, err = run("check", "--config", str(path))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f'{path}:2: daemon.bnd: unknown key "bnd" (did you mean "bind"?); rename or remove it',
        f'{path}:7: model_provider.providers[0].api_key: provider "o" has a literal API key; '
        "config files hold references only. Store the key with `palyra vault put global/o` and "
        'set api_key = "vault:global/o" (or "env:NAME" / "file:PATH")',
        f'{path}:11: model_provider.models[0].provider: model "default" names provider "opnai", '
        "which does not exist (known: o)",
        "3 problems found.",
    ]
    assert SECRET not in out + err


def test_check_reports_agents_problems_too(home: Path) -> None:
    agents = home / "agents.toml"
    agents.write_text('[[agents]]\nid = "a"\nmodel = "nope"\n')
    code, _, err = run("check", "--agents", str(agents))
    assert code == 1
    assert err.splitlines()[0] == (
        f'{agents}:3: agents[0].model: agent "a" uses model "nope", which palyra.toml does not '
        "define (known: default, embed, whisper)"
    )
    code, _, err = run("check", "--agents", str(home / "missing.toml"))
    assert code == 1
    assert "missing.toml: file not found; fix the path given to --agents" in err


def test_show_prints_each_value_with_its_source(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALYRA_MODEL_PROVIDER__MAX_RETRIES", "4")
    code, out, _ = run("show", "--config", str(EXAMPLE))
    assert code == 0
    lines = out.splitlines()
    assert f'daemon.bind = "127.0.0.1:7142"  # file:{EXAMPLE}:6' in lines
    assert 'daemon.log_level = "info"  # default' in lines
    assert "model_provider.max_retries = 4  # env:PALYRA_MODEL_PROVIDER__MAX_RETRIES" in lines
    assert (
        f'model_provider.providers[1].api_key = "vault:global/anthropic"  # file:{EXAMPLE}:32'
        in lines
    )
    assert "model_provider.providers[0].api_key = (unset)  # default" in lines


def test_show_json_has_config_and_provenance(home: Path) -> None:
    code, out, _ = run("show", "--config", str(EXAMPLE), "--json")
    assert code == 0
    body = json.loads(out)
    assert body["path"] == str(EXAMPLE)
    assert body["config"]["daemon"]["client_tokens"] == ["env:PALYRA_CLIENT_TOKEN"]
    assert body["provenance"]["model_provider.models[1].id"] == f"file:{EXAMPLE}:43"
    assert body["provenance"]["storage.redis_url"] == f"file:{EXAMPLE}:11"


@pytest.mark.parametrize("as_json", [False, True])
def test_show_never_prints_secret_looking_values(home: Path, as_json: bool) -> None:
    path = home / "palyra.toml"
    path.write_text(SECRETISH)
    code, out, err = run("show", "--config", str(path), *(["--json"] if as_json else []))
    assert code == 0, err
    assert SECRET not in out
    assert PASSWORD not in out
    assert "vault:global/gw" in out
    assert "env:PALYRA_CLIENT_TOKEN" in out
    assert "db.internal" in out
    assert "[REDACTED]" in out
    if not as_json:
        lines = out.splitlines()
        assert any(
            line.startswith('model_provider.providers[0].headers.X-Trace = "on"') for line in lines
        )


def test_show_of_an_invalid_config_lists_the_problems_without_the_secret(home: Path) -> None:
    path = home / "palyra.toml"
    path.write_text(
        f'[[model_provider.providers]]\nid = "o"\nkind = "openai"\napi_key = "{SECRET}"\n'
    )
    code, out, err = run("show", "--config", str(path))
    assert code == 1
    assert out == ""
    assert err.splitlines()[-1] == "1 problem found."
    assert SECRET not in err


def test_path_explains_the_choice(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = home / "xdg" / "palyra" / "palyra.toml"
    assert run("path") == (
        0,
        f"no file at {default}; using built-in defaults (a deterministic provider)\n",
        "",
    )
    default.parent.mkdir(parents=True)
    default.write_text("")
    assert run("path")[1] == f"{default} (from $XDG_CONFIG_HOME)\n"
    monkeypatch.setenv("PALYRA_CONFIG", str(EXAMPLE))
    assert run("path")[1] == f"{EXAMPLE} (from $PALYRA_CONFIG)\n"
    missing = home / "nope.toml"
    assert run("path", "--config", str(missing))[1] == (
        f"{missing} (from --config) — missing: this is an error\n"
    )
