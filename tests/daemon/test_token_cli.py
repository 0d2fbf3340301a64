"""``palyra token`` and the tokens ``palyra serve`` needs at start (quickstart mint, refusals)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app
from palyra.config.schema import DaemonConfig, PalyraConfig, default_config
from palyra.daemon.security.startup_tokens import prepare_tokens, read_local_client_token
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore
from palyra.model import PalyraError
from palyra.store import open_store


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(path))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    return path


def token(*args: str) -> Result:
    return CliRunner().invoke(app, ["token", *args])


def test_create_prints_the_token_once_on_stdout_and_stores_only_its_hash(state: Path) -> None:
    client = token("create", "--name", "ci")
    admin = token("create", "--admin", "--expires-days", "7")
    assert client.exit_code == 0 and admin.exit_code == 0, client.stderr + admin.stderr
    client_token, admin_token = client.stdout.strip(), admin.stdout.strip()
    assert re.fullmatch(r"plk_[A-Za-z0-9_-]{43}", client_token)
    assert re.fullmatch(r"pla_[A-Za-z0-9_-]{43}", admin_token)
    assert "shown once" in client.stderr and client_token not in client.stderr
    assert re.search(r"created admin token tok_[0-9a-f]{12} \(admin token, expires ", admin.stderr)

    listing = token("list", "--json")
    text = token("list")
    for secret in (client_token, admin_token):
        assert secret not in listing.stdout + text.stdout
    rows = json.loads(listing.stdout)
    assert [(r["kind"], r["name"], r["status"]) for r in rows] == [
        ("client", "ci", "active"),
        ("admin", "admin token", "active"),
    ]
    assert rows[0]["expires"] is None and rows[1]["expires"].endswith("Z")
    assert "expires never" in text.stdout and "ci" in text.stdout

    raw = b"".join(p.read_bytes() for p in state.glob("palyra.db*"))
    for secret in (client_token, admin_token):
        assert secret.encode() not in raw and secret[4:].encode() not in raw


def test_revoke_marks_the_token_and_unknown_ids_fail(state: Path) -> None:
    assert token("create").exit_code == 0
    [row] = json.loads(token("list", "--json").stdout)
    revoked = token("revoke", row["id"])
    assert revoked.exit_code == 0 and f"revoked client token {row['id']}" in revoked.stdout
    assert json.loads(token("list", "--json").stdout)[0]["status"] == "revoked"
    missing = token("revoke", "tok_000000000000")
    assert missing.exit_code == 1
    assert "there is no token 'tok_000000000000'; see: palyra token list" in missing.stderr


def test_names_with_control_characters_are_refused_and_old_ones_printed_escaped(
    state: Path,
) -> None:
    for name in ("ci\x00", "a\x1b[2Jb", "x\u202ey", "line\nbreak"):
        refused = token("create", "--name", name)
        assert refused.exit_code == 1, refused.stdout
        assert "token name holds the control character U+" in refused.stderr
        assert "use printable characters only" in refused.stderr
    assert token("list", "--json").stdout.strip() == "[]"
    # A name stored before names were checked reaches the terminal as escapes, never raw.
    assert token("create", "--name", "ops").exit_code == 0
    with sqlite3.connect(state / "palyra.db") as db:
        db.execute("UPDATE daemon_tokens SET name = ?", ("ops\x1b]0;owned\x07\x00",))
    listed = token("list").stdout
    assert "ops\\x1b]0;owned\\x07\\x00" in listed
    assert "\x1b" not in listed and "\x07" not in listed and "\x00" not in listed
    [row] = json.loads(token("list", "--json").stdout)
    revoked = token("revoke", row["id"]).stdout
    assert "\x1b" not in revoked and "ops\\x1b" in revoked


def test_bad_expiry_is_a_usage_error_and_empty_list_says_how_to_start(state: Path) -> None:
    assert token("create", "--expires-days", "0").exit_code == 2
    assert token("create", "--expires-days", "36501").exit_code == 2
    assert "palyra token create" in token("list").stdout
    assert json.loads(token("list", "--json").stdout) == []


def _config(**daemon: object) -> PalyraConfig:
    return default_config().model_copy(update={"daemon": DaemonConfig(**daemon)})


def test_loopback_start_without_tokens_mints_one_and_writes_it_0600(tmp_path: Path) -> None:
    config = default_config()
    first = asyncio.run(prepare_tokens(config, host="127.0.0.1", state_dir=tmp_path, environ={}))
    assert first.minted is not None and first.minted.startswith("plk_")
    assert first.token_file == tmp_path / "client_token"
    assert stat.S_IMODE(first.token_file.stat().st_mode) == 0o600
    assert read_local_client_token(tmp_path) == first.minted
    assert first.minted not in repr(first)
    again = asyncio.run(prepare_tokens(config, host="::1", state_dir=tmp_path, environ={}))
    assert again.minted is None  # an active client token exists now


def test_non_loopback_start_without_tokens_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PalyraError) as info:
        asyncio.run(
            prepare_tokens(default_config(), host="0.0.0.0", state_dir=tmp_path, environ={})
        )
    message = info.value.envelope.message
    assert "0.0.0.0" in message and "palyra token create" in message
    assert not (tmp_path / "client_token").exists()

    async def create_one() -> None:
        store = await open_store(
            f"sqlite+aiosqlite:///{tmp_path}/palyra.db", migrations=(TOKENS_SCHEMA,)
        )
        await TokenStore(store).create(TokenKind.CLIENT)
        await store.aclose()

    asyncio.run(create_one())
    ok = asyncio.run(
        prepare_tokens(default_config(), host="0.0.0.0", state_dir=tmp_path, environ={})
    )
    assert ok.minted is None


def test_configured_client_tokens_need_no_minted_token(tmp_path: Path) -> None:
    config = _config(client_tokens=["env:MY_PALYRA_TOKEN"])
    result = asyncio.run(
        prepare_tokens(
            config,
            host="10.1.2.3",
            state_dir=tmp_path,
            environ={"MY_PALYRA_TOKEN": "abcdefghijklmnop"},
        )
    )
    assert result.minted is None and result.fixed == {"abcdefghijklmnop": TokenKind.CLIENT}


def _serve(state: Path, bind: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PALYRA_STATE_DIR": str(state)}
    env.pop("PALYRA_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-c", "from palyra.cli.main import main; main()", "serve", "--bind", bind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_serve_quickstart_prints_a_working_token_once(tmp_path: Path) -> None:
    process = _serve(tmp_path, "127.0.0.1:0")
    try:
        assert process.stdout is not None and process.stderr is not None
        banner = process.stdout.readline() + process.stdout.readline()
        minted = re.search(r"plk_[A-Za-z0-9_-]{43}", banner)
        assert minted, banner
        serving = process.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/v1", serving)
        assert url, serving
        models = f"{url.group(1)}/v1/models"
        assert httpx2.get(models, timeout=5).status_code == 401
        auth = {"authorization": f"Bearer {minted.group(0)}"}
        assert httpx2.get(models, headers=auth, timeout=5).status_code == 200
        assert read_local_client_token(tmp_path) == minted.group(0)
        process.terminate()
        assert process.wait(timeout=15) == 0
        assert minted.group(0) not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_on_a_public_bind_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    process = _serve(tmp_path, "0.0.0.0:0")
    try:
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2
    assert "refusing to listen on 0.0.0.0" in err and "palyra token create" in err


def test_create_agent_binds_a_client_token_to_an_agent_of_agents_toml(state: Path) -> None:
    state.mkdir(parents=True)
    missing = token("create", "--agent", "ops")
    assert missing.exit_code == 1
    assert 'no agent "ops" in' in missing.stderr and "(known: none)" in missing.stderr
    (state / "agents.toml").write_text('[[agents]]\nid = "ops"\nmodel = "default"\n')
    bound = token("create", "--agent", "ops", "--name", "ops bot")
    assert bound.exit_code == 0, bound.stderr
    assert "(ops bot, agent ops)" in bound.stderr
    admin = token("create", "--admin", "--agent", "ops")
    assert admin.exit_code == 1 and "only a client token can be bound to an agent" in admin.stderr
    rows = json.loads(token("list", "--json").stdout)
    assert [(r["name"], r["agent"]) for r in rows] == [("ops bot", "ops")]
    assert "agent ops  ops bot" in token("list").stdout


async def test_a_token_table_from_before_agents_gains_the_agent_column(tmp_path: Path) -> None:
    """Step 2 of the migration: an existing v1 table keeps its tokens and gets agent_id."""
    import sqlalchemy as sa

    from palyra.daemon.security import tokens_store
    from palyra.store import MigrationSet

    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    v1_only = MigrationSet("daemon_tokens", tokens_store.TOKENS_SCHEMA.migrations[:1])
    store = await open_store(url, state_dir=tmp_path, migrations=(v1_only,))
    async with store.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO daemon_tokens (id, kind, name, token_hash, created_at_ms) "
                "VALUES ('tok_old', 'client', 'old', 'ab', 1)"
            )
        )
    await store.aclose()
    store = await open_store(url, state_dir=tmp_path, migrations=(TOKENS_SCHEMA,))
    try:
        [old] = await TokenStore(store).list()
        assert (old.id, old.agent_id) == ("tok_old", None)
        _, new = await TokenStore(store).create(TokenKind.CLIENT, agent_id="ops")
        assert [r.agent_id for r in await TokenStore(store).list()] == [None, "ops"]
        assert new.agent_id == "ops"
    finally:
        await store.aclose()
