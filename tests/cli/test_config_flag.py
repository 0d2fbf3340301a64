"""``--config`` on vault, auth and token: the store they open is the one that file names, exactly
as ``palyra serve --config`` would use it, not the one discovery would find."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palyra.cli.main import app


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.delenv("PALYRA_VAULT_KEY", raising=False)
    path = tmp_path / "elsewhere.toml"
    path.write_text(f'version = 1\n[storage]\nurl = "sqlite+aiosqlite:///{tmp_path}/named.db"\n')
    return path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_vault_uses_the_store_of_the_named_config(config: Path, tmp_path: Path) -> None:
    assert run("vault", "put", "global/named", "--config", str(config), input="v4lue\n")[0] == 0
    assert (tmp_path / "named.db").is_file()
    assert not (tmp_path / "state" / "palyra.db").exists()  # not the discovered default
    assert run("vault", "get", "global/named", "--config", str(config))[:2] == (0, "v4lue\n")
    listed = run("vault", "list", "--json", "--config", str(config))
    assert [m["ref"] for m in json.loads(listed[1])] == ["global/named"]


def test_token_uses_the_store_of_the_named_config(config: Path, tmp_path: Path) -> None:
    code, token, _ = run("token", "create", "--name", "ci", "--config", str(config))
    assert code == 0 and token.startswith("plk_")
    assert (tmp_path / "named.db").is_file()
    listed = run("token", "list", "--json", "--config", str(config))
    assert [t["name"] for t in json.loads(listed[1])] == ["ci"]
    assert run("token", "list", "--json")[1].strip() == "[]"  # discovery: the default store


def test_auth_uses_the_store_of_the_named_config(config: Path, tmp_path: Path) -> None:
    # A read-only command creates no store, so the named one is made by a write first.
    assert run("vault", "put", "global/named", "--config", str(config), input="v4lue\n")[0] == 0
    code, out, err = run("auth", "profiles", "list", "--json", "--config", str(config))
    assert code == 0, err
    assert json.loads(out)["items"] == []
    with closing(sqlite3.connect(tmp_path / "named.db")) as db:  # the profile tables are there
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "auth_profiles" in tables
    assert not (tmp_path / "state" / "palyra.db").exists()


def test_a_broken_named_config_is_reported_for_vault(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[storage]\nurll = 1\n")
    code, _, err = run("vault", "list", "--config", str(bad))
    assert code == 1
    assert "cannot read the config for [storage] url" in err and "bad.toml:3" in err
