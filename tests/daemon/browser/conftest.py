"""The web console in a real browser: Debian's Chromium driven by Playwright for Python.

One browser for the whole session and one daemon per module (each test gets a fresh browser
context: no cookies, no storage). The daemon has a token store and a vault in a temporary state
dir, one model on the fake upstream (a thread on loopback) and one agent; the authlib test
authorization server stands in for OpenAI's. Without ``/usr/bin/chromium`` (or the
``playwright`` package) every test here is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from browser_support import (
    AGENTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    CRON_KEY,
    GOOD_KEY,
    STREAM_CHUNK_DELAY_MS,
    ConsoleSite,
    Watched,
    sync_playwright,
)
from oauth_server import serving

from palyra.auth import ApiKeyRefs, AuthProfileRecord, AuthProfileRegistry, secret_ref
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    StorageConfig,
)
from palyra.daemon import AppState, create_app
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind, generate_token
from palyra.store import open_store
from palyra.testing import FakeUpstream
from palyra.vault import KeyResolver, Vault

if sync_playwright is not None:
    from playwright.sync_api import Browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop marked running in the
    main thread while the session's browser is open, which async tests after them could not
    share. Without Chromium or Playwright they are skipped, saying which is missing."""
    here = Path(__file__).parent
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(here)]
    mine = {id(item) for item in ours}
    items[:] = [item for item in items if id(item) not in mine] + ours
    reason = None
    if sync_playwright is None:
        reason = "the playwright package is not installed (pip install -r requirements-test.txt)"
    elif not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)"
    if reason is not None:
        for item in ours:
            item.add_marker(pytest.mark.skip(reason=reason))


def _free_socket() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


async def _seed(url: str, state_dir: Path, key: str) -> None:
    """The profile the cron runs use, and a broken one, stored before the daemon starts."""
    store = await open_store(url)
    try:
        keys = KeyResolver(state_dir, environ={"PALYRA_VAULT_KEY": key})
        registry = AuthProfileRegistry(store, await Vault.open(store, keys))
        now = registry.now()
        ref = secret_ref("cronkey", "api_key")
        await registry.create(
            AuthProfileRecord(
                profile_id="cronkey",
                provider="openai",
                display_name="Cron key",
                credential=ApiKeyRefs(api_key_ref=str(ref)),
                created_at=now,
                updated_at=now,
            )
        )
        await registry.vault.put(ref, CRON_KEY)
        # A profile whose secret is gone from the vault: the doctor has a finding to show.
        await registry.create(
            AuthProfileRecord(
                profile_id="old-claude",
                provider="anthropic",
                display_name="Old Claude key",
                credential=ApiKeyRefs(api_key_ref=str(secret_ref("old-claude", "api_key"))),
                created_at=now,
                updated_at=now,
            )
        )
    finally:
        await store.aclose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    state_dir = tmp_path_factory.mktemp("console")
    key = base64.b64encode(os.urandom(32)).decode()
    url = f"sqlite+aiosqlite:///{state_dir}/palyra.db"
    (state_dir / "agents.toml").write_text(AGENTS)
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    seeding = threading.Thread(target=asyncio.run, args=(_seed(url, state_dir, key),))
    seeding.start()
    seeding.join()
    fake_upstream = FakeUpstream(
        api_keys=frozenset({GOOD_KEY, CRON_KEY}), stream_chunk_delay_ms=STREAM_CHUNK_DELAY_MS
    )
    with fake_upstream as fake, serving() as oauth:
        config = PalyraConfig(
            storage=StorageConfig(url=url),
            model_provider=ModelProviderRegistryConfig(
                default_chat_model="main",
                providers=[
                    ProviderConfig(
                        id="up",
                        kind="openai",
                        base_url=fake.openai_base_url,
                        auth_profile_ids=["cronkey"],
                    )
                ],
                models=[
                    ModelConfig(
                        id="main", provider="up", model="gpt-4o-mini", capabilities=["chat"]
                    )
                ],
            ),
        )
        state = AppState.from_config(config)
        state.state_dir = state_dir
        state.environ = {"PALYRA_VAULT_KEY": key, "PALYRA_STATE_DIR": str(state_dir)}
        state.run_scheduler = True
        admin = generate_token(TokenKind.ADMIN)
        state.auth = Authenticator(
            store_url=url, state_dir=state_dir, fixed_tokens={admin: TokenKind.ADMIN}
        )
        sock = _free_socket()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(state), lifespan="on", log_config=None, access_log=False, loop="uvloop"
            )
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console test daemon did not start")
            time.sleep(0.01)
        site_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            yield ConsoleSite(site_url, admin, fake, oauth, state_dir)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def watched(browser: Browser, site: ConsoleSite) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1100, "height": 760}, base_url=site.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    seen = Watched(page, context)
    page.on("pageerror", lambda exc: seen.errors.append(str(exc)))

    def record(response: Any) -> None:
        if "/console" in response.url and response.request.resource_type in ("fetch", "xhr"):
            try:
                text = response.text()
            except Exception:  # an event stream, or a body the page navigated away from
                text = ""
            seen.bodies.append((f"{response.request.method} {response.url}", text))

    page.on("response", record)
    try:
        yield seen
    finally:
        context.close()
