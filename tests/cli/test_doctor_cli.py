"""``palyra doctor`` on real state directories, SQLite stores, vaults and HTTP servers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx2
import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from palyra.cli.doctor import (
    Check,
    Status,
    check_state_dir,
    daemon_check,
    known_schemas,
    render,
    schema_check,
)
from palyra.cli.main import app
from palyra.store import open_store
from palyra.vault import KeyResolver, Vault


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("PALYRA_STATE_DIR", str(path))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.delenv("PALYRA_VAULT_KEY", raising=False)
    monkeypatch.delenv("PALYRA_VAULT_PASSPHRASE", raising=False)
    return path


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def closed_bind() -> str:
    """A loopback address nothing listens on, so no real daemon on 7142 can change results."""
    return f"127.0.0.1:{free_port()}"


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "palyra.toml"
    path.write_text("version = 1\n" + body, encoding="utf-8")
    return path


def doctor(config: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    return result.exit_code, result.stdout, result.stderr


def line(out: str, name: str) -> str:
    found = [
        row
        for row in out.splitlines()
        if row[:5].strip() in {"ok", "warn", "fail"} and row[6:].split("  ")[0].strip() == name
    ]
    assert found, f"no {name!r} line in:\n{out}"
    return found[0]


def details_after(out: str, name: str) -> list[str]:
    """The indented lines under a check's line (its further details, then its fix)."""
    rows = out.splitlines()
    index = rows.index(line(out, name))
    following = []
    for row in rows[index + 1 :]:
        if not row.startswith(" "):
            break
        following.append(row.strip())
    return following


def fix_after(out: str, name: str) -> str:
    fixes = [row for row in details_after(out, name) if row.startswith("fix: ")]
    assert len(fixes) == 1, out
    return fixes[0].removeprefix("fix: ")


def make_vault(state: Path) -> None:
    state.mkdir(mode=0o700, exist_ok=True)

    async def go() -> None:
        store = await open_store(state_dir=state)
        try:
            vault = await Vault.open(store, KeyResolver(state, environ={}))
            await vault.put("global/openai", "sk-doctor-test-secret")
        finally:
            await store.aclose()

    asyncio.run(go())


def test_fresh_default_state_is_healthy_and_creates_nothing(
    state: Path, tmp_path: Path, closed_bind: str
) -> None:
    config = write_config(tmp_path, f'[daemon]\nbind = "{closed_bind}"\n')
    code, out, _ = doctor(config)
    assert code == 0, out
    assert line(out, "config").startswith("ok")
    assert "not created yet" in line(out, "state dir")
    assert line(out, "provider deterministic").startswith("ok")
    assert "local" in line(out, "provider deterministic")
    assert line(out, "daemon").startswith("warn")
    assert fix_after(out, "daemon") == "start it with `palyra serve`"
    assert not state.exists()


def test_existing_vault_reports_its_key_and_no_secret(
    state: Path, tmp_path: Path, closed_bind: str
) -> None:
    make_vault(state)
    code, out, _ = doctor(write_config(tmp_path, f'[daemon]\nbind = "{closed_bind}"\n'))
    assert code == 0, out
    assert "vault v1" in line(out, "store")
    assert line(out, "vault").startswith("ok")
    assert str(state / "vault.key") in line(out, "vault")
    assert "sk-doctor-test-secret" not in out


def test_vault_whose_key_file_was_removed_fails_with_restore_hint(
    state: Path, tmp_path: Path, closed_bind: str
) -> None:
    make_vault(state)
    (state / "vault.key").unlink()
    code, out, err = doctor(write_config(tmp_path, f'[daemon]\nbind = "{closed_bind}"\n'))
    assert code == 1
    assert line(out, "vault").startswith("fail")
    assert f"Restore {state / 'vault.key'} from your backup" in fix_after(out, "vault")
    assert line(out, "auth profiles").startswith("warn")
    assert err == "1 of 8 checks failed.\n"


def test_bad_config_fails_and_names_the_problem(state: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, '[daemon]\nbind = 7142\nnot_a_key = "x"\n')
    code, out, _ = doctor(config)
    assert code == 1
    assert line(out, "config").startswith("fail")
    assert str(config) in line(out, "config")
    assert "palyra config check" in fix_after(out, "config")
    assert line(out, "state dir").startswith("ok")


def test_every_config_problem_gets_a_line_of_its_own(state: Path, tmp_path: Path) -> None:
    body = "".join(
        f"[daemon]\nbind = {n}\n" if n == 0 else f'unknown_{n} = "x"\n' for n in range(9)
    )
    config = write_config(tmp_path, body)
    code, out, _ = doctor(config)
    assert code == 1
    assert line(out, "config").endswith(f"9 problems in {config}:")
    problems = details_after(out, "config")[:-1]
    assert len(problems) == 9, out
    assert all(p.startswith(f"{config}:") for p in problems)
    assert sorted(p.split(": ")[1] for p in problems) == sorted(
        ["daemon.bind", *(f"daemon.unknown_{n}" for n in range(1, 9))]
    )


def test_unreachable_provider_fails_with_connection_hint(
    state: Path, tmp_path: Path, closed_bind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCTOR_TEST_KEY", "sk-doctor-unreachable")
    config = write_config(
        tmp_path,
        f"""
[daemon]
bind = "{closed_bind}"

[model_provider]
default_chat_model = "remote"
request_timeout_ms = 2000

[[model_provider.providers]]
id = "gone"
kind = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
api_key = "env:DOCTOR_TEST_KEY"

[[model_provider.models]]
id = "remote"
provider = "gone"
model = "gpt-4o-mini"
""",
    )
    code, out, _ = doctor(config)
    assert code == 1
    assert line(out, "provider gone").startswith("fail")
    assert "connection" in line(out, "provider gone")
    assert fix_after(out, "provider gone").startswith("nothing answered at base_url")
    assert "sk-doctor-unreachable" not in out


def test_running_daemon_is_ok_and_a_foreign_server_fails(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/healthz").respond_with_json({"status": "ok"})
    bind = f"127.0.0.1:{httpserver.port}"

    async def check() -> Check:
        async with httpx2.AsyncClient() as client:
            return await daemon_check(bind, client)

    assert asyncio.run(check()) == Check("daemon", Status.OK, f"running at {bind}")
    httpserver.clear()
    httpserver.expect_request("/healthz").respond_with_data("nope", status=404)
    result = asyncio.run(check())
    assert result.status is Status.FAIL
    assert "HTTP 404" in result.detail


def test_loose_state_dir_permissions_warn_with_chmod_hint(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    result = check_state_dir(loose)
    assert result.status is Status.WARN
    assert result.hint == f"chmod 700 {loose}"
    loose.chmod(0o700)
    assert check_state_dir(loose).status is Status.OK


def test_schema_newer_than_this_palyra_fails_and_a_partial_one_says_db_upgrade() -> None:
    current = {s.component: s.latest for s in known_schemas()}
    assert schema_check(current, "db").status is Status.OK
    assert schema_check({}, "db").status is Status.OK  # nothing stored yet
    partial = schema_check({**current, "cron": 1}, "db")
    assert partial.status is Status.WARN
    assert "pending: cron v1 -> v2" in partial.detail
    assert partial.hint.startswith("run `palyra db upgrade`")
    newer = schema_check({**current, "vault": 99}, "db")
    assert newer.status is Status.FAIL
    assert "vault v99 (this Palyra knows up to v1)" in newer.detail
    assert newer.hint.startswith("upgrade Palyra")


def test_render_aligns_names_and_puts_hints_under_failures_only() -> None:
    lines = render(
        [
            Check("a", Status.OK, "fine", "unused hint"),
            Check("longer", Status.FAIL, "broken", "do this"),
        ]
    )
    assert lines == [
        "ok    a       fine",
        "fail  longer  broken",
        "              fix: do this",
    ]
