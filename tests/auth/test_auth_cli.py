"""``palyra auth`` in a real subprocess (key piped on stdin) and through typer's CliRunner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app
from palyra.testing import FakeUpstream

KEY_A = "sk-cli-auth-a-6c2f9e1d7b"
KEY_B = "sk-cli-auth-b-3a8d5f0c2e"
WRONG = "sk-cli-auth-wrong-9b7e"
CMD = [sys.executable, "-c", "from palyra.cli.main import main; main()", "auth"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys=frozenset({KEY_A, KEY_B})) as upstream:
        yield upstream


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(path))
    for var in ("PALYRA_VAULT_KEY", "PALYRA_VAULT_PASSPHRASE", "PALYRA_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    return path


def sub(
    state: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        "PALYRA_STATE_DIR": str(state),
        "XDG_CONFIG_HOME": str(state.parent / "no-config"),
        "PATH": "/usr/bin:/bin",
        **env,
    }
    return subprocess.run(
        [*CMD, *args],
        input=stdin,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,  # run() kills the child when it expires
    )


def cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["auth", *args], input=input)


def test_connect_list_show_in_a_real_subprocess_with_the_key_on_stdin(
    fake: FakeUpstream, state: Path
) -> None:
    url = fake.openai_base_url
    connected = sub(state, "openai", "api-key", "--profile", "Main", "--base-url", url, stdin=KEY_A)
    assert connected.returncode == 0, connected.stderr
    assert connected.stdout == (
        f"connected profile main (openai, global) at {url}; the key is in the vault at "
        "profile:main/api_key\n"
    )
    listed = sub(state, "profiles", "list", "--json")
    items = json.loads(listed.stdout)["items"]
    assert [(i["profile_id"], i["health"]) for i in items] == [("main", "ok")]
    shown = sub(state, "profiles", "show", "main")
    assert "credential.api_key_ref: profile:main/api_key" in shown.stdout
    for result in (connected, listed, shown):
        assert KEY_A not in result.stdout + result.stderr


def test_a_rejected_key_exits_1_with_the_reason_and_stores_nothing(
    fake: FakeUpstream, state: Path
) -> None:
    url = fake.anthropic_base_url
    refused = sub(state, "anthropic", "api-key", "--profile", "c", "--base-url", url, stdin=WRONG)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: Anthropic at {url} rejected the API key (HTTP 401)")
    assert WRONG not in refused.stdout + refused.stderr
    assert cli("profiles", "list").stdout.startswith("no auth profiles")


def test_key_from_env_var_and_missing_env_var(
    fake: FakeUpstream, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", KEY_B)
    url = fake.openai_base_url
    ok = cli("openai", "api-key", "--profile", "env1", "--base-url", url, "--from-env", "MY_KEY")
    assert ok.exit_code == 0, ok.stderr
    missing = cli("openai", "api-key", "--profile", "x", "--from-env", "NOT_SET_ANYWHERE")
    assert missing.exit_code == 2
    assert "the environment variable NOT_SET_ANYWHERE is not set" in missing.stderr


def test_usage_errors_exit_2(state: Path) -> None:
    bad_id = cli("openai", "api-key", "--profile", "no spaces!", input=KEY_A)
    assert bad_id.exit_code == 2 and "profile id 'no spaces!' must be" in bad_id.stderr
    empty = cli("openai", "api-key", "--profile", "p", input="\n")
    assert empty.exit_code == 2 and "OpenAI API key is empty" in empty.stderr
    provider = cli("profiles", "explain-selection", "gemini")
    assert provider.exit_code == 2 and "unknown provider 'gemini'" in provider.stderr
    assert cli("profiles", "show").exit_code == 2  # missing argument (typer)


def test_order_explain_cooldown_doctor_and_delete(fake: FakeUpstream, state: Path) -> None:
    url = fake.openai_base_url
    for pid, key in (("first", KEY_A), ("second", KEY_B)):
        assert (
            cli("openai", "api-key", "--profile", pid, "--base-url", url, input=key).exit_code == 0
        )
    ops = cli(
        "openai", "api-key", "--profile", "ops", "--agent", "ops", "--base-url", url, input=KEY_A
    )
    assert ops.exit_code == 0 and "(openai, agent:ops)" in ops.stdout

    ordered = cli("profiles", "order", "openai", "second")
    assert (ordered.exit_code, ordered.stdout) == (0, "order: second, first\n")
    explained = cli("profiles", "explain-selection", "openai", "--agent", "ops", "--json")
    body = json.loads(explained.stdout)
    assert body["chosen"] == "ops"
    assert [c["profile_id"] for c in body["candidates"]] == ["ops", "second", "first"]
    text = cli("profiles", "explain-selection", "openai")
    assert text.stdout.splitlines()[0] == "openai: second"
    assert "  - ops: scoped to agent:ops, not the global scope; pass --agent ops" in text.stdout

    healthy = cli("profiles", "doctor")
    assert (healthy.exit_code, healthy.stdout) == (0, "all auth profiles look healthy\n")
    not_found = cli("profiles", "cooldown-clear", "ghost")
    assert not_found.exit_code == 1 and "no auth profile 'ghost'" in not_found.stderr
    cleared = cli("profiles", "cooldown-clear", "first")
    assert (cleared.exit_code, cleared.stdout) == (0, "profile first is ok again\n")

    deleted = cli("profiles", "delete", "second")
    assert (deleted.exit_code, deleted.stdout) == (
        0,
        "deleted profile second and its vault secrets\n",
    )
    assert cli("profiles", "delete", "second").exit_code == 1
    vault_list = CliRunner().invoke(app, ["vault", "list", "--json"])
    refs = [e["ref"] for e in json.loads(vault_list.stdout)]
    assert refs == ["profile:first/api_key", "profile:ops/api_key"]


def test_doctor_exits_1_and_prints_the_fix_when_a_secret_is_missing(
    fake: FakeUpstream, state: Path
) -> None:
    url = fake.openai_base_url
    assert cli("openai", "api-key", "--profile", "p", "--base-url", url, input=KEY_A).exit_code == 0
    assert CliRunner().invoke(app, ["vault", "delete", "profile:p/api_key"]).exit_code == 0
    doctor = cli("profiles", "doctor")
    assert doctor.exit_code == 1
    assert doctor.stdout == (
        "error   profile p: its secret profile:p/api_key is not in the vault, so the profile "
        "cannot be used\n"
        f"        fix: palyra auth openai api-key --profile p --base-url {url}\n"
    )
    as_json = json.loads(cli("profiles", "doctor", "--json").stdout)
    assert [(f["code"], f["severity"]) for f in as_json] == [("missing_secret", "error")]


def test_palyra_config_storage_url_is_used(fake: FakeUpstream, state: Path, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "auth.db"
    config = tmp_path / "palyra.toml"
    config.write_text(f'version = 1\n\n[storage]\nurl = "sqlite+aiosqlite:///{db}"\n')
    url = fake.openai_base_url
    result = sub(
        state,
        "openai",
        "api-key",
        "--profile",
        "cfg",
        "--base-url",
        url,
        stdin=KEY_A,
        PALYRA_CONFIG=str(config),
    )
    assert result.returncode == 0, result.stderr
    assert db.exists() and not (state / "palyra.db").exists()
    listed = sub(state, "profiles", "list", PALYRA_CONFIG=str(config))
    assert listed.stdout.startswith("cfg ")
    broken = tmp_path / "broken.toml"
    broken.write_text("version = 1\n[storage]\nurl = 5\n")
    bad = sub(state, "profiles", "list", PALYRA_CONFIG=str(broken))
    assert bad.returncode == 1 and "cannot read the config for [storage] url" in bad.stderr
    assert os.environ.get("PALYRA_CONFIG") is None
