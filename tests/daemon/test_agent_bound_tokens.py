"""A client token bound to an agent (``token create --agent``): its ``/v1`` requests use that agent's
auth profile, without any new header; an unbound token keeps the global one. Checked at the fake
upstream, which records the key each request carried."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from palyra.auth import ApiKeyRefs, AuthProfileRecord, AuthProfileRegistry, secret_ref
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    ProviderConfig,
    StorageConfig,
    default_config,
)
from palyra.daemon import AppState
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore
from palyra.store import open_store
from palyra.testing import FakeUpstream
from palyra.vault import KeyResolver, Vault

StartDaemon = Any
SHARED_KEY = "sk-shared-global-key-0001"
OPS_KEY = "sk-ops-agent-key-0002"


async def seed(tmp_path: Path, url: str) -> tuple[str, str]:
    """Two openai profiles (a global one, one scoped to agent ops) and two client tokens, one
    bound to ops; returns (bound token, unbound token)."""
    store = await open_store(url, state_dir=tmp_path, migrations=(TOKENS_SCHEMA,))
    try:
        vault = await Vault.open(store, KeyResolver(tmp_path))
        registry = AuthProfileRegistry(store, vault)
        now = datetime.now(UTC)
        for pid, scope, key in (
            ("shared", "global", SHARED_KEY),
            ("ops-key", "agent:ops", OPS_KEY),
        ):
            await registry.create(
                AuthProfileRecord(
                    profile_id=pid,
                    provider="openai",
                    display_name=pid,
                    scope=scope,
                    credential=ApiKeyRefs(api_key_ref=str(secret_ref(pid, "api_key"))),
                    created_at=now,
                    updated_at=now,
                )
            )
            await vault.put(secret_ref(pid, "api_key"), key)
        tokens = TokenStore(store)
        bound, record = await tokens.create(TokenKind.CLIENT, name="ops bot", agent_id="ops")
        assert record.public_dict(tokens.now_ms())["agent"] == "ops"
        plain, _ = await tokens.create(TokenKind.CLIENT, name="someone")
        return bound, plain
    finally:
        await store.aclose()


def chat_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in lines if line["path"] == "/v1/chat/completions"]


async def test_a_token_bound_to_an_agent_uses_that_agents_profile(
    start_daemon: StartDaemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    access_lines: io.StringIO,
) -> None:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PALYRA_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
    bound, plain = await seed(tmp_path, url)
    async with FakeUpstream(api_keys=frozenset({SHARED_KEY, OPS_KEY})) as fake:
        provider = ProviderConfig(
            id="up", kind="openai", base_url=fake.openai_base_url, allow_private_base_url=True
        )
        config = default_config().model_copy(
            update={
                "storage": StorageConfig(url=url),
                "model_provider": ModelProviderRegistryConfig(
                    default_chat_model="main",
                    providers=[provider],
                    models=[ModelConfig(id="main", provider="up", model="gpt-4o-mini")],
                ),
            }
        )
        auth = Authenticator(store_url=url, state_dir=tmp_path)
        daemon = start_daemon(AppState.from_config(config), auth=auth)
        body = {"model": "main", "messages": [{"role": "user", "content": "hi"}]}
        seen: list[str] = []
        async with httpx2.AsyncClient(base_url=daemon.url, timeout=10) as http:
            for token in (bound, plain, bound):
                for stream in (False, True):
                    response = await http.post(
                        "/v1/chat/completions",
                        json={**body, "stream": stream},
                        headers={"authorization": f"Bearer {token}"},
                    )
                    assert response.status_code == 200, response.text
                    seen.append(fake.requests[-1].headers["authorization"])
            # The access line and the counters are written just after the last byte went out.
            for _ in range(200):
                if len(chat_lines(access_lines)) >= 6:
                    break
                await asyncio.sleep(0.01)
            metrics = await http.get("/metrics", headers={"authorization": f"Bearer {plain}"})
    ops, shared = f"Bearer {OPS_KEY}", f"Bearer {SHARED_KEY}"
    assert seen == [ops, ops, shared, shared, ops, ops]
    chats = chat_lines(access_lines)
    assert [line.get("agent") for line in chats] == ["ops", "ops", None, None, "ops", "ops"]
    agent_rows = [
        r for r in metrics.text.splitlines() if r.startswith("palyra_agent_requests_total{")
    ]
    assert agent_rows == ['palyra_agent_requests_total{agent="ops",status="200"} 4'], agent_rows
    assert OPS_KEY not in access_lines.getvalue() + metrics.text
