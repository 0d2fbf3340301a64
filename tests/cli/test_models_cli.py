"""``palyra models list|test`` through typer's CliRunner, against a palyra.toml aimed at a fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app
from palyra.testing import FakeUpstream

KEY = "sk-cli-models-test-key"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.setenv("MODELS_CLI_KEY", KEY)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def write_config(
    tmp_path: Path, fake: FakeUpstream, *, key_env: str = "MODELS_CLI_KEY", name: str = "palyra"
) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
version = 1

[model_provider]
default_chat_model = "fast"
request_timeout_ms = 2000

[[model_provider.providers]]
id = "openai-fake"
kind = "openai"
base_url = "{fake.openai_base_url}"
api_key = "env:{key_env}"

[[model_provider.providers]]
id = "claude-fake"
kind = "anthropic"
base_url = "{fake.anthropic_base_url}"
api_key = "env:{key_env}"

[[model_provider.providers]]
id = "local"
kind = "deterministic"

[[model_provider.models]]
id = "fast"
provider = "openai-fake"
model = "gpt-4o-mini"
capabilities = ["chat", "tools"]
context_window = 128000
fallbacks = ["claude"]

[[model_provider.models]]
id = "claude"
provider = "claude-fake"
model = "claude-haiku-4-5"

[[model_provider.models]]
id = "offline"
provider = "local"
model = "deterministic"
""",
        encoding="utf-8",
    )
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["models", *args])


def test_list_shows_each_configured_model_without_calling_anyone(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    result = run("list", "--config", str(write_config(tmp_path, fake)))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "ID",
        "PROVIDER",
        "UPSTREAM",
        "CAPABILITIES",
        "CONTEXT",
        "FALLBACKS",
    ]
    assert lines[1].split() == [
        "fast",
        "openai-fake",
        "gpt-4o-mini",
        "chat,tools",
        "128000",
        "claude",
    ]
    assert lines[2].split() == ["claude", "claude-fake", "claude-haiku-4-5", "chat", "-", "-"]
    assert fake.requests == []


def test_list_json_with_discover_adds_what_each_upstream_reports(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    result = run("list", "--config", str(write_config(tmp_path, fake)), "--json", "--discover")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [m["id"] for m in document["models"]] == ["fast", "claude", "offline"]
    assert document["models"][0]["fallbacks"] == ["claude"]
    providers = {p["id"]: p for p in document["providers"]}
    assert "gpt-4o-mini" in providers["openai-fake"]["models"]
    assert providers["claude-fake"]["models"] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert providers["local"]["ok"] is True
    assert KEY not in result.output


def test_list_discover_marks_whether_each_upstream_offers_the_model(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    path = write_config(tmp_path, fake)
    path.write_text(path.read_text().replace('"gpt-4o-mini"', '"gpt-9"'))
    result = run("list", "--config", str(path), "--discover")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    assert rows["fast"][-1] == "no" and rows["claude"][-1] == "yes"
    assert "provider claude-fake (anthropic): 2 models: claude-sonnet-4-5" in result.output


def test_models_test_probes_every_model_for_free_and_passes(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    result = run("test", "--config", str(write_config(tmp_path, fake)))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok    fast (openai-fake, gpt-4o-mini)")
    assert "ok    claude (claude-fake, claude-haiku-4-5)" in result.output
    assert "ok    offline (local, deterministic)  local" in result.output
    assert {r.path for r in fake.requests} == {"/v1/models"}  # nothing billable was sent


def test_models_test_with_a_refused_key_exits_1_with_the_class_and_a_fix(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELS_CLI_KEY", "sk-wrong-key-here")
    result = run("test", "claude", "--config", str(write_config(tmp_path, fake)))
    assert result.exit_code == 1
    assert "FAIL  claude (claude-fake, claude-haiku-4-5)  auth_invalid:" in result.output
    assert "fix: the key was refused" in result.output
    assert "1 of 1 probes failed." in result.output
    assert "sk-wrong-key-here" not in result.output


def test_models_test_names_a_missing_env_key_and_an_unreachable_server(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, fake, key_env="MODELS_CLI_UNSET")
    monkeypatch.delenv("MODELS_CLI_UNSET", raising=False)
    result = run("test", "fast", "--config", str(path))
    assert result.exit_code == 1
    assert "config:" in result.output and "env:MODELS_CLI_UNSET" in result.output
    reachable_once = write_config(tmp_path, fake, name="down")
    fake.stop()
    down = run("test", "claude", "--config", str(reachable_once))
    assert down.exit_code == 1
    assert "connection:" in down.output and "nothing answered at base_url" in down.output


def test_models_test_unknown_id_and_a_broken_config_exit_1(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    unknown = run("test", "nope", "--config", str(write_config(tmp_path, fake)))
    assert unknown.exit_code == 1
    assert 'model "nope" is not configured (known: fast, claude, offline)' in unknown.output
    broken = tmp_path / "broken.toml"
    broken.write_text('version = 1\n[model_provider]\nmax_retries = "many"\n')
    result = run("list", "--config", str(broken))
    assert result.exit_code == 1
    assert "broken.toml:3" in result.output


def test_list_discover_shows_a_provider_failure_without_failing_the_listing(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    path = write_config(tmp_path, fake)
    fake.stop()
    result = run("list", "--config", str(path), "--discover")
    assert result.exit_code == 0, result.output
    assert "provider openai-fake (openai): error connection:" in result.output
    assert "provider local (deterministic): " in result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    assert rows["fast"][-1] == "?"
