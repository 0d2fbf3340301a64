"""``palyra doctor`` says where shared state lives: Redis (reachable or not) or per process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from palyra.cli.main import app
from redis_support import free_port


def _doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str) -> tuple[int, str]:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    config = tmp_path / "palyra.toml"
    bind = f"127.0.0.1:{free_port()}"  # no daemon there: its line only warns
    config.write_text(f'version = 1\n[daemon]\nbind = "{bind}"\n[storage]\n{storage}\n')
    result = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    return result.exit_code, result.stdout


def _line(out: str) -> str:
    [row] = [r for r in out.splitlines() if r[6:].startswith("shared state")]
    return row


def test_without_redis_url_doctor_says_state_is_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _doctor(tmp_path, monkeypatch, "")
    row = _line(out)
    assert row.startswith("ok ") and "per process (no [storage] redis_url)" in row
    assert "a revoked token is refused within 30 s" in row
    assert code == 0, out


@pytest.mark.redis
def test_with_a_reachable_redis_doctor_says_state_is_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    code, out = _doctor(tmp_path, monkeypatch, f'redis_url = "{redis_url}"')
    row = _line(out)
    assert row.startswith("ok ") and f"Redis at {redis_url} (reachable, " in row
    assert "shared by every replica" in row
    assert code == 0, out


def test_with_redis_away_doctor_warns_and_names_the_fix_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"redis://app:hunter2-secret@127.0.0.1:{free_port()}/0"
    code, out = _doctor(tmp_path, monkeypatch, f'redis_url = "{url}"')
    row = _line(out)
    shown = url.replace("hunter2-secret", "***")
    assert row.startswith("warn ") and f"Redis at {shown} does not answer" in row
    assert "serves on with per-process state" in row
    assert f"fix: start Redis at {shown}, or fix [storage] redis_url" in out
    assert "hunter2-secret" not in out
    assert code == 0, out  # a warning: requests do not fail without Redis
