"""``palyra auth openai login`` and ``refresh`` end to end: a real loopback callback listener,
the authlib server, and a thread playing the user's browser."""

from __future__ import annotations

import base64
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from oauth_server import OAuthTestServer, serving
from typer.testing import CliRunner, Result

from palyra.cli import auth_oauth
from palyra.cli.main import app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return _free_port()


@pytest.fixture
def server(port: int) -> Iterator[OAuthTestServer]:
    with serving() as state:
        state.redirect_uris.add(f"http://localhost:{port}/auth/callback")
        yield state


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    return f"sqlite+aiosqlite:///{tmp_path}/palyra.db"


def _browser(monkeypatch: pytest.MonkeyPatch, *, tamper_state: bool = False) -> list[int]:
    """Replace the browser with a thread that consents and follows the redirect home."""
    statuses: list[int] = []

    def visit(url: str) -> None:
        with httpx2.Client() as client:
            location = client.get(url, follow_redirects=False).headers["location"]
            location = location.replace("//localhost:", "//127.0.0.1:")
            if tamper_state:
                statuses.append(client.get(location.replace("state=", "state=x")).status_code)
            statuses.append(client.get(location).status_code)

    def open_browser(url: str) -> bool:
        threading.Thread(target=visit, args=(url,), daemon=True).start()
        return True

    monkeypatch.setattr(auth_oauth, "open_browser", open_browser)
    return statuses


def _login(server: OAuthTestServer, port: int, db_url: str, *extra: str) -> Result:
    return CliRunner().invoke(
        app,
        [
            "auth", "openai", "login", "--profile", "openai-cli", "--issuer", server.base_url,
            "--client-id", server.client_id, "--port", str(port), "--db-url", db_url, *extra,
        ],
    )  # fmt: skip


def test_login_saves_the_profile_and_refresh_rotates_it(
    server: OAuthTestServer, port: int, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses = _browser(monkeypatch, tamper_state=True)
    result = _login(server, port, db_url)
    assert result.exit_code == 0, result.output
    assert "signed in" in result.output and "openai-cli" in result.output
    assert statuses == [400, 200]  # a forged state does not end the wait
    for token in server.issued_access_tokens() + server.issued_refresh_tokens():
        assert token not in result.output

    refreshed = CliRunner().invoke(
        app, ["auth", "openai", "refresh", "--profile", "openai-cli", "--db-url", db_url]
    )
    assert refreshed.exit_code == 0, refreshed.output
    assert "openai-cli: refreshed" in refreshed.output
    assert server.refresh_grants == 1
    for token in server.issued_access_tokens() + server.issued_refresh_tokens():
        assert token not in refreshed.output


def test_login_reports_a_failed_code_exchange(
    server: OAuthTestServer, port: int, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.fail_token_status = 500
    _browser(monkeypatch)
    result = _login(server, port, db_url)
    assert result.exit_code == 1
    assert "HTTP 500" in result.output


def test_login_names_a_busy_port(server: OAuthTestServer, db_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _login(server, busy.getsockname()[1], db_url, "--no-browser")
    assert result.exit_code == 1
    assert "--port" in result.output


def test_refresh_of_an_unknown_profile_fails_clearly(db_url: str) -> None:
    result = CliRunner().invoke(app, ["auth", "openai", "refresh", "nobody", "--db-url", db_url])
    assert result.exit_code == 1
    assert "no auth profile 'nobody'" in result.output
