"""``palyra vault`` through typer's CliRunner and a real subprocess; no secret leaks anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result
from vault_helpers import new_key_b64, plaintext_hits

from palyra.cli import vault as vault_cli
from palyra.cli.main import app

OPENAI = "sk-cli-openai-5b2e8d71c4"
OTHER = "sk-cli-other-a9f04e3b"
SECRETS = [OPENAI, OTHER]


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(path))
    for var in ("PALYRA_VAULT_KEY", "PALYRA_VAULT_PASSPHRASE", "PALYRA_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return path


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["vault", *args], input=input)


def assert_no_leak(result: Result) -> None:
    assert not [s for s in SECRETS if s in result.stdout or s in result.stderr]


def test_put_get_list_delete_round_trip_without_leaks(state: Path) -> None:
    put = run("put", "global/openai", input=OPENAI + "\n")
    assert put.exit_code == 0, put.stderr
    assert put.stdout == "stored global/openai (version 1)\n"
    assert run("put", "agent:ops/other", input=OTHER).exit_code == 0
    got = run("get", "vault:global/openai")
    assert (got.exit_code, got.stdout) == (0, OPENAI + "\n")
    listed = run("list")
    assert listed.exit_code == 0
    assert "global/openai" in listed.stdout and "agent:ops/other" in listed.stdout
    as_json = run("list", "--json", "--scope", "agent:ops")
    assert [e["ref"] for e in json.loads(as_json.stdout)] == ["agent:ops/other"]
    deleted = run("delete", "agent:ops/other")
    assert (deleted.exit_code, deleted.stdout) == (0, "deleted agent:ops/other\n")
    again = run("delete", "agent:ops/other")
    assert again.exit_code == 1 and "there is no vault secret agent:ops/other" in again.stderr
    for result in (put, listed, as_json, deleted, again):
        assert_no_leak(result)
    assert plaintext_hits([state], SECRETS) == []


def test_bad_ref_is_a_usage_error_on_stderr(state: Path) -> None:
    result = run("put", "openai", input=OPENAI)
    assert result.exit_code == 2
    assert "no '/' between scope and name" in result.stderr
    assert result.stdout == ""
    assert run("list", "--scope", "team:x").exit_code == 2


def test_missing_secret_exits_1_with_the_fix(state: Path) -> None:
    result = run("get", "global/nope")
    assert result.exit_code == 1
    assert "palyra vault put global/nope" in result.stderr


def test_hidden_prompt_is_used_on_a_terminal(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_cli, "_stdin_is_tty", lambda: True)
    result = run("put", "global/openai", input=f"{OPENAI}\n{OPENAI}\n")
    assert result.exit_code == 0, result.stderr
    assert_no_leak(result)
    monkeypatch.setattr(vault_cli, "_stdin_is_tty", lambda: False)
    assert run("get", "global/openai").stdout == OPENAI + "\n"


def test_rotate_key_to_file_env_and_passphrase_keeps_secrets_readable(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("put", "global/openai", input=OPENAI)
    run("put", "global/other", input=OTHER)
    old = (state / "vault.key").read_bytes()
    rotated = run("rotate-key")
    assert rotated.exit_code == 0, rotated.stderr
    assert "re-wrapped 2 secret(s)" in rotated.stdout
    assert (state / "vault.key").read_bytes() != old
    assert run("get", "global/other").stdout == OTHER + "\n"

    new_key = new_key_b64()
    monkeypatch.setenv("PALYRA_VAULT_NEW_KEY", new_key)
    to_env = run("rotate-key", "--to-env")
    assert to_env.exit_code == 0, to_env.stderr
    assert "removed the old key file" in to_env.stdout
    assert new_key not in to_env.stdout + to_env.stderr
    assert not (state / "vault.key").exists()
    monkeypatch.setenv("PALYRA_VAULT_KEY", new_key)
    assert run("get", "global/openai").stdout == OPENAI + "\n"

    monkeypatch.setenv("PALYRA_VAULT_NEW_PASSPHRASE", "a long new passphrase")
    assert run("rotate-key", "--to-passphrase").exit_code == 0
    monkeypatch.delenv("PALYRA_VAULT_KEY")
    monkeypatch.setenv("PALYRA_VAULT_PASSPHRASE", "a long new passphrase")
    assert run("get", "global/openai").stdout == OPENAI + "\n"
    assert plaintext_hits([state], SECRETS) == []


def test_rotate_key_refuses_two_targets(state: Path) -> None:
    assert run("rotate-key", "--to-env", "--to-passphrase").exit_code == 2


def test_wrong_key_exits_1_and_a_corrupt_database_3_with_clear_messages(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("put", "global/openai", input=OPENAI)
    (state / "vault.key").rename(state / "vault.key.bak")
    monkeypatch.setenv("PALYRA_VAULT_KEY", new_key_b64())
    wrong = run("get", "global/openai")
    assert wrong.exit_code == 1
    assert "PALYRA_VAULT_KEY is set, but it is not the master key" in wrong.stderr
    assert_no_leak(wrong)
    db = state / "broken.db"
    db.write_bytes(b"garbage" * 1000)
    corrupt = run("list", "--db-url", f"sqlite+aiosqlite:///{db}")
    assert corrupt.exit_code == 3
    assert f"the SQLite database {db} is damaged" in corrupt.stderr


def test_a_wrong_env_key_is_refused_even_when_the_key_file_would_open_the_vault(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("put", "global/openai", input=OPENAI).exit_code == 0
    wrong_key = new_key_b64()
    monkeypatch.setenv("PALYRA_VAULT_KEY", wrong_key)
    for args in (("get", "global/openai"), ("list",), ("put", "global/other")):
        result = run(*args, input=OTHER)
        assert result.exit_code == 1, (args, result.stdout)
        assert result.stdout == ""
        assert "PALYRA_VAULT_KEY is set, but it is not the master key" in result.stderr
        assert "or unset it" in result.stderr
        assert_no_leak(result)
        assert wrong_key not in result.stderr
    monkeypatch.delenv("PALYRA_VAULT_KEY")
    assert run("get", "global/openai").stdout == OPENAI + "\n"
    assert run("get", "global/other").exit_code == 1  # the refused put stored nothing


def test_piped_stdin_in_a_real_subprocess(state: Path) -> None:
    env = {"PALYRA_STATE_DIR": str(state), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-c", "from palyra.cli.main import main; main()", "vault"]
    put = subprocess.run(
        [*cmd, "put", "global/piped"],
        input=OPENAI + "\n",
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert put.returncode == 0, put.stderr
    assert OPENAI not in put.stdout + put.stderr
    got = subprocess.run(
        [*cmd, "get", "global/piped"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert got.stdout == OPENAI + "\n"
    assert plaintext_hits([state], [OPENAI]) == []


def test_the_vault_uses_the_configured_store_like_the_daemon(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "elsewhere.db"
    config = tmp_path / "palyra.toml"
    config.write_text(f'version = 1\n[storage]\nurl = "sqlite+aiosqlite:///{configured}"\n')
    monkeypatch.setenv("PALYRA_CONFIG", str(config))
    assert run("put", "global/openai", input=OPENAI).exit_code == 0
    assert configured.exists() and not (state / "palyra.db").exists()
    assert run("get", "global/openai").stdout == OPENAI + "\n"
    # --db-url still wins over the config.
    explicit = tmp_path / "explicit.db"
    url = f"sqlite+aiosqlite:///{explicit}"
    missing = run("get", "global/openai", "--db-url", url)
    assert missing.exit_code == 1 and "global/openai" in missing.stderr
    config.write_text("version = 1\n[storage]\nurl = 42\n")
    broken = run("list")
    assert broken.exit_code == 1
    assert "cannot read the config for [storage] url" in broken.stderr
    assert "storage.url" in broken.stderr


@pytest.mark.postgres
def test_the_cli_round_trip_on_postgresql(
    state: Path, postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same commands against PostgreSQL ([storage] url from the environment), and a second
    "replica" with the same master key reads what the first stored."""
    monkeypatch.setenv("PALYRA_STORAGE__URL", postgres_database)
    monkeypatch.setenv("PALYRA_VAULT_KEY", new_key_b64())
    put = run("put", "global/openai", input=OPENAI + "\n")
    assert put.exit_code == 0, put.stderr
    monkeypatch.setenv("PALYRA_STATE_DIR", str(state.parent / "other-replica"))
    got = run("get", "global/openai")
    assert (got.exit_code, got.stdout) == (0, OPENAI + "\n")
    listed = run("list", "--json")
    assert [e["ref"] for e in json.loads(listed.stdout)] == ["global/openai"]
    assert run("delete", "global/openai").exit_code == 0
    monkeypatch.setenv("PALYRA_VAULT_KEY", new_key_b64())
    assert run("put", "global/other", input=OTHER).exit_code == 1  # another key: refused
    for result in (put, listed):
        assert_no_leak(result)
