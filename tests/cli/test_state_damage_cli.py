"""Damaged, empty and absent state through the real CLI: clear errors, exit 3, nothing changed.

The database is a real ``palyra.db`` made by ``palyra vault put`` and ``palyra token create``;
``palyra serve`` runs as a real process.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app

SECRET = "sk-state-damage-7d1c93b04e"
PAGE = 4096
SERVE = "from palyra.cli.main import main; main()"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(path))
    for var in ("PALYRA_VAULT_KEY", "PALYRA_VAULT_PASSPHRASE", "PALYRA_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return path


def palyra(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def make_state(state: Path) -> Path:
    for n in range(40):
        assert palyra("vault", "put", f"global/s{n}", input=f"{SECRET}-{n}").exit_code == 0
    for n in range(10):
        assert palyra("token", "create", "--name", f"t{n}").exit_code == 0
    db = state / "palyra.db"
    assert not Path(f"{db}-wal").exists()
    return db


def damage_a_middle_page(db: Path) -> None:
    with db.open("r+b") as fh:
        fh.seek(db.stat().st_size // PAGE // 2 * PAGE)
        fh.write(random.Random(11).randbytes(2000))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


READ_COMMANDS = [
    ("vault", "list"),
    ("vault", "get", "global/s1"),
    ("token", "list"),
    ("auth", "profiles", "list"),
    ("doctor",),
]


def assert_damage_reported(result: Result, db: Path) -> None:
    output = result.stdout + result.stderr
    assert result.exit_code == 3, output
    assert f"the SQLite database {db} is damaged" in output
    assert f"mv {db} {db}.damaged" in output and "backup" in output
    assert "Traceback" not in output and "sqlalchemy" not in output
    assert SECRET not in output


def serve_once(state: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALYRA_VAULT")}
    env["PALYRA_STATE_DIR"] = str(state)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run(
        [sys.executable, "-c", SERVE, "serve", "--bind", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_damaged_page_gives_one_clear_error_and_exit_3_and_the_file_is_untouched(
    state: Path,
) -> None:
    db = make_state(state)
    damage_a_middle_page(db)
    before = digest(db)
    for args in READ_COMMANDS:
        assert_damage_reported(palyra(*args), db)
    assert_damage_reported(palyra("vault", "put", "global/new", input="v"), db)
    served = serve_once(state)
    assert served.returncode == 3, served.stderr
    assert served.stderr.startswith(f"palyra serve: the SQLite database {db} is damaged")
    assert "Traceback" not in served.stderr and "serving on" not in served.stderr
    assert digest(db) == before
    assert sorted(p.name for p in state.iterdir()) == ["palyra.db", "vault.key"]


def test_an_empty_palyra_db_is_an_error_not_a_fresh_store(state: Path) -> None:
    state.mkdir(mode=0o700)
    db = state / "palyra.db"
    db.touch(mode=0o600)
    for args in READ_COMMANDS:
        result = palyra(*args)
        assert_damage_reported(result, db)
        assert "the file is empty (0 bytes)" in result.stdout + result.stderr
    assert_damage_reported(palyra("token", "create"), db)
    assert serve_once(state).returncode == 3
    assert db.stat().st_size == 0
    assert [p.name for p in state.iterdir()] == ["palyra.db"]


def test_read_only_commands_on_a_fresh_state_dir_create_nothing(state: Path) -> None:
    got = palyra("vault", "get", "global/openai")
    assert got.exit_code == 1 and got.stdout == ""
    assert "there is no vault secret global/openai (nothing is stored yet" in got.stderr
    assert "palyra vault put global/openai" in got.stderr
    listed = palyra("vault", "list")
    assert (listed.exit_code, listed.stdout.split(":")[0]) == (0, "no secrets")
    assert "nothing is stored yet" in listed.stdout
    assert palyra("vault", "list", "--json").stdout.strip() == "[]"
    assert palyra("vault", "delete", "global/openai").exit_code == 1
    tokens = palyra("token", "list")
    assert tokens.exit_code == 0 and "nothing is stored yet" in tokens.stdout
    assert palyra("token", "list", "--json").stdout.strip() == "[]"
    assert palyra("token", "revoke", "tok_000000000000").exit_code == 1
    profiles = palyra("auth", "profiles", "list")
    assert profiles.exit_code == 0 and "nothing is stored yet" in profiles.stdout
    assert '"items": []' in palyra("auth", "profiles", "list", "--json").stdout
    shown = palyra("auth", "profiles", "show", "openai-default")
    assert shown.exit_code == 1
    assert "there is no auth profile 'openai-default' (nothing is stored yet)" in shown.stderr
    assert palyra("auth", "profiles", "delete", "openai-default").exit_code == 1
    checked = palyra("auth", "profiles", "doctor")
    assert checked.exit_code == 0 and "nothing is stored yet" in checked.stdout
    assert not state.exists()


def test_reading_the_vault_of_a_store_without_one_makes_no_key(state: Path) -> None:
    assert palyra("token", "create").exit_code == 0
    listed = palyra("vault", "list")
    assert listed.exit_code == 0 and "nothing is stored yet" in listed.stdout
    got = palyra("vault", "get", "global/openai")
    assert got.exit_code == 1 and "holds no vault secrets" in got.stderr
    assert not (state / "vault.key").exists()
    assert palyra("vault", "put", "global/openai", input=SECRET).exit_code == 0
    assert (state / "vault.key").exists()
