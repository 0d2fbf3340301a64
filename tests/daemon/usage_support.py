"""Shared by the usage tests of tests/daemon: a daemon on the fake upstream with stored tokens
(so the ledger names them), and a reader of the ledger's rows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from palyra.config.schema import (
    LimitSpec,
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    StorageConfig,
)
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore, generate_token
from palyra.store import open_store
from palyra.usage import USAGE_SCHEMA, usage_ledger

KEY_ENV = "PALYRA_USAGE_TEST_KEY"
KEY = "sk-usage-test-upstream-key"


def usage_config(
    fake_openai: str, fake_anthropic: str, db: Path, *, redis_url: str = "", **extra: Any
) -> PalyraConfig:
    providers = [
        ProviderConfig(id="oai", kind="openai", base_url=fake_openai, api_key=f"env:{KEY_ENV}"),
        ProviderConfig(
            id="claude", kind="anthropic", base_url=fake_anthropic, api_key=f"env:{KEY_ENV}"
        ),
    ]
    chat = ["chat", "tools"]
    models = [
        ModelConfig(id="gpt", provider="oai", model="gpt-4.1", capabilities=chat),
        ModelConfig(id="mini", provider="oai", model="gpt-4o-mini", capabilities=chat),
        ModelConfig(
            id="reasoner", provider="oai", model="gpt-4.1", capabilities=chat, api="responses"
        ),
        ModelConfig(id="sonnet", provider="claude", model="claude-sonnet-4-5", capabilities=chat),
        ModelConfig(id="haiku", provider="claude", model="claude-haiku-4-5", capabilities=chat),
    ]
    return PalyraConfig(
        storage=StorageConfig(url=f"sqlite+aiosqlite:///{db}", redis_url=redis_url),
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="gpt", providers=providers, models=models
        ),
        **extra,
    )


def make_tokens(db: Path, *specs: tuple[str, LimitSpec | None]) -> list[tuple[str, str]]:
    """Client tokens in the store: (token, id) per (name, limits)."""

    async def go() -> list[tuple[str, str]]:
        store = await open_store(f"sqlite+aiosqlite:///{db}", migrations=(TOKENS_SCHEMA,))
        try:
            tokens = TokenStore(store)
            made = []
            for name, limits in specs:
                token, record = await tokens.create(TokenKind.CLIENT, name=name, limits=limits)
                made.append((token, record.id))
            return made
        finally:
            await store.aclose()

    return asyncio.run(go())


def store_auth(db: Path) -> tuple[Authenticator, str]:
    """An authenticator on the store's tokens plus a fixed admin token."""
    admin = generate_token(TokenKind.ADMIN)
    auth = Authenticator(
        store_url=f"sqlite+aiosqlite:///{db}",
        state_dir=db.parent,
        fixed_tokens={admin: TokenKind.ADMIN},
    )
    return auth, admin


def ledger_rows(db: Path, *, request_id: str | None = None) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        store = await open_store(f"sqlite+aiosqlite:///{db}", migrations=(USAGE_SCHEMA,))
        try:
            query = sa.select(usage_ledger).order_by(usage_ledger.c.id)
            if request_id is not None:
                query = query.where(usage_ledger.c.request_id == request_id)
            async with store.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(query)]
        finally:
            await store.aclose()

    return asyncio.run(go())


def wait_rows(db: Path, request_id: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The rows of one request once the ledger's writer has flushed them."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = ledger_rows(db, request_id=request_id)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def config_toml(fake_openai: str, db: Path, *, redis_url: str = "", extra: str = "") -> str:
    """A palyra.toml for ``palyra serve`` on the fake upstream (OpenAI API), with the store
    (and Redis) given."""
    return f"""\
version = 1

[storage]
url = "sqlite+aiosqlite:///{db}"
redis_url = "{redis_url}"

[model_provider]
default_chat_model = "gpt"

[[model_provider.providers]]
id = "oai"
kind = "openai"
base_url = "{fake_openai}"
api_key = "env:{KEY_ENV}"

[[model_provider.models]]
id = "gpt"
provider = "oai"
model = "gpt-4.1"
{extra}"""


def serve(config: Path, state: Path) -> tuple[Any, str]:
    """``palyra serve`` in a process of its own on a free port; (process, base URL)."""
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "PALYRA_STATE_DIR": str(state), KEY_ENV: KEY}
    env.pop("PALYRA_CONFIG", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from palyra.cli.main import main; main()",
            "serve",
            "--config",
            str(config),
            "--bind",
            "127.0.0.1:0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    match = re.search(r"palyra serving on (http://127\.0\.0\.1:\d+)/v1", line)
    if not match:
        process.kill()
        raise AssertionError(f"palyra serve did not start: {line}{process.stderr.read()}")
    import threading

    # Keep reading its log, so a full pipe never blocks the daemon mid-request.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, match.group(1)
