"""OAuth refresh across replicas, with real processes and the real authlib authorization
server: an expired token needed by 4 processes at the same moment is refreshed once (the
store's lock), none gets ``invalid_grant``, and every one ends with the new token."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from oauth_server import OAuthTestServer, oauth_env, serving

from palyra.auth import secret_ref
from palyra.store import open_store

pytestmark = pytest.mark.slow

PID = "openai-oauth"
VAULT_KEY = base64.b64encode(b"oauth-replicas-vault-key-32byte!").decode()
CHILD = Path(__file__).with_name("refresh_child.py")
PROCESSES = 4


@pytest.fixture
def oauth_server() -> Iterator[OAuthTestServer]:
    with serving() as state:
        yield state


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    url: str = request.getfixturevalue("postgres_database")
    return url


async def signed_in_with_an_expired_token(server: OAuthTestServer, url: str, tmp_path: Path) -> str:
    """Sign in through the real PKCE flow, with the clock two hours back so that the access
    token expired an hour ago by the children's real clocks; the old token's digest."""
    store = await open_store(url)
    try:
        async with oauth_env(server, store, tmp_path, vault_key=VAULT_KEY) as env:
            env.clock.now = time.time() - 7200
            await env.sign_in(PID)
            old = await env.vault.get(secret_ref(PID, "access_token"))
    finally:
        await store.aclose()
    return hashlib.sha256(old.encode()).hexdigest()


def test_four_processes_refresh_an_expired_token_once(
    oauth_server: OAuthTestServer, shared_url: str, tmp_path: Path
) -> None:
    old = asyncio.run(signed_in_with_an_expired_token(oauth_server, shared_url, tmp_path))
    oauth_server.token_hits = oauth_server.refresh_grants = 0
    oauth_server.token_delay_s = 0.5  # a refresh in flight while the others ask
    env = {**os.environ, "PALYRA_VAULT_KEY": VAULT_KEY}
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), shared_url, PID, str(tmp_path / f"s{i}")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "ready", (line, child.stderr.read() if child.stderr else "")
        for child in children:  # all four ask at once
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results: list[dict[str, Any]] = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert [r.get("error") for r in results] == [None] * PROCESSES
    assert oauth_server.refresh_grants == 1
    assert oauth_server.token_hits == 1
    assert oauth_server.invalid_grants == 0
    digests = {r["token_sha256"] for r in results}
    assert len(digests) == 1 and digests != {old}
    newest = oauth_server.issued_access_tokens()[-1]
    assert digests == {hashlib.sha256(newest.encode()).hexdigest()}
    # The new token works where the provider checks it.
    response = httpx2.get(
        f"{oauth_server.api_base_url}/models", headers={"Authorization": f"Bearer {newest}"}
    )
    assert response.status_code == 200
