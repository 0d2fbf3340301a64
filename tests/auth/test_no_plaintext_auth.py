"""No key in plaintext anywhere after connect/list/show/doctor: files, DB bytes, logs, CLI output."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palyra.cli.main import app
from palyra.testing import FakeUpstream, Fault, FaultKind

OPENAI_KEY = "sk-plain-openai-4e7b1c9d2a8f"
ANTHROPIC_KEY = "sk-ant-plain-8d3f6a0b5c1e"
WRONG_KEY = "sk-plain-wrong-1a2b3c4d5e6f"
KEYS = (OPENAI_KEY, ANTHROPIC_KEY, WRONG_KEY)
CMD = [sys.executable, "-c", "from palyra.cli.main import main; main()", "auth"]


def leaks(text: str) -> list[str]:
    return [k[:10] for k in KEYS if k in text]


def file_leaks(root: Path) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: {k[:10]}" for k in KEYS if k.encode() in data]
    return hits


def test_no_key_in_state_files_db_logs_or_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(state))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    for var in ("PALYRA_VAULT_KEY", "PALYRA_VAULT_PASSPHRASE", "PALYRA_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    runner = CliRunner()

    with FakeUpstream(api_keys=frozenset({OPENAI_KEY, ANTHROPIC_KEY})) as fake:
        env = {
            "PALYRA_STATE_DIR": str(state),
            "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
            "PATH": "/usr/bin:/bin",
        }
        for args, key in (
            (
                ["openai", "api-key", "--profile", "o", "--base-url", fake.openai_base_url],
                OPENAI_KEY,
            ),
            (
                ["anthropic", "api-key", "--profile", "a", "--base-url", fake.base_url],
                ANTHROPIC_KEY,
            ),
            (
                ["openai", "api-key", "--profile", "w", "--base-url", fake.openai_base_url],
                WRONG_KEY,
            ),
        ):
            done = subprocess.run(
                [*CMD, *args],
                input=key,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,  # run() kills the child when it expires
            )
            outputs += [done.stdout, done.stderr]
        # Rotation in-process too, so caplog sees the connect path; and a 5xx whose body we drop.
        fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=502))
        for args, key in (
            (
                ["openai", "api-key", "--profile", "o", "--base-url", fake.openai_base_url],
                OPENAI_KEY,
            ),
            (
                ["anthropic", "api-key", "--profile", "a", "--base-url", fake.base_url],
                ANTHROPIC_KEY,
            ),
        ):
            result = runner.invoke(app, ["auth", *args], input=key)
            outputs += [result.stdout, result.stderr]
        for args in (
            ["profiles", "list"],
            ["profiles", "list", "--json"],
            ["profiles", "show", "o", "--json"],
            ["profiles", "show", "a"],
            ["profiles", "doctor", "--json"],
            ["profiles", "explain-selection", "openai", "--json"],
        ):
            result = runner.invoke(app, ["auth", *args])
            assert result.exit_code == 0, result.stderr
            outputs += [result.stdout, result.stderr]

    assert "rejected the API key" in "".join(outputs)  # the wrong key really was refused
    assert [leaks(text) for text in outputs if leaks(text)] == []
    assert leaks(caplog.text) == []
    assert file_leaks(state) == []
    db = state / "palyra.db"
    assert db.exists() and not any(k.encode() in db.read_bytes() for k in KEYS)

    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path.name} is {mode:o}"
