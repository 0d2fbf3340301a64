"""Route policy, token format and the authenticator (cache, expiry, revocation) on real SQLite."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from palyra.auth.oauth import OPENAI_OAUTH_CALLBACK_PATH
from palyra.daemon.security.policy import (
    Access,
    Authenticator,
    admits,
    presented_tokens,
    required_access,
)
from palyra.daemon.security.tokens_store import (
    TOKENS_SCHEMA,
    TokenKind,
    TokenRecord,
    TokenStore,
    generate_token,
    hash_token,
)
from palyra.model import PalyraError
from palyra.store import Store, open_store


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("path", "access"),
    [
        ("/healthz", Access.OPEN),
        (OPENAI_OAUTH_CALLBACK_PATH, Access.OPEN),
        ("/console/v1/whoami", Access.ADMIN),
        ("/console/v1", Access.ADMIN),
        ("/metrics", Access.CLIENT_OR_ADMIN),
        ("/v1/chat/completions", Access.CLIENT),
        ("/v1/messages", Access.CLIENT),
        ("/openapi.json", Access.CLIENT),
        ("/nothing", Access.CLIENT),
        ("/healthz/", Access.CLIENT),
        ("/console/v1x", Access.CLIENT),
        (OPENAI_OAUTH_CALLBACK_PATH + "/x", Access.ADMIN),
    ],
)
def test_every_path_but_health_and_callback_needs_a_token(path: str, access: Access) -> None:
    assert required_access(path) is access


def test_client_and_admin_tokens_open_only_their_own_surface() -> None:
    assert admits(Access.CLIENT, TokenKind.CLIENT) and not admits(Access.CLIENT, TokenKind.ADMIN)
    assert admits(Access.ADMIN, TokenKind.ADMIN) and not admits(Access.ADMIN, TokenKind.CLIENT)
    assert admits(Access.CLIENT_OR_ADMIN, TokenKind.CLIENT)
    assert admits(Access.CLIENT_OR_ADMIN, TokenKind.ADMIN)


def test_x_api_key_counts_only_on_anthropic_routes() -> None:
    headers = {"authorization": "Bearer abc", "x-api-key": "def"}
    assert presented_tokens("/v1/messages", headers) == ["abc", "def"]
    assert presented_tokens("/v1/messages/count_tokens", headers) == ["abc", "def"]
    assert presented_tokens("/v1/chat/completions", headers) == ["abc"]
    assert presented_tokens("/v1/messagesx", {"x-api-key": "def"}) == []
    assert presented_tokens("/v1/models", {"authorization": "Basic abc"}) == []
    assert presented_tokens("/v1/models", {"authorization": "bearer  xyz "}) == ["xyz"]


def test_tokens_have_kind_prefixes_and_32_random_bytes() -> None:
    client = generate_token(TokenKind.CLIENT, lambda n: b"\xff" * n)
    assert re.fullmatch(r"plk_[A-Za-z0-9_-]{43}", client)
    assert generate_token(TokenKind.ADMIN).startswith("pla_")
    assert generate_token(TokenKind.CLIENT) != generate_token(TokenKind.CLIENT)
    assert hash_token(client) != client and len(hash_token(client)) == 64


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path}/palyra.db", migrations=(TOKENS_SCHEMA,)
    )
    yield store
    await store.aclose()


async def authenticator(tmp_path: Path, clock: Clock, **kwargs: object) -> Authenticator:
    auth = Authenticator(
        store_url=f"sqlite+aiosqlite:///{tmp_path}/palyra.db",
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    await auth.start()
    return auth


async def test_stored_token_is_accepted_and_its_use_recorded(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    tokens = TokenStore(store, clock=clock)
    token, record = await tokens.create(TokenKind.ADMIN, name="ops")
    auth = await authenticator(tmp_path, clock)
    try:
        principal = await auth.authenticate(token)
        assert principal is not None
        assert (principal.kind, principal.token_id, principal.name) == (
            TokenKind.ADMIN,
            record.id,
            "ops",
        )
        assert await auth.authenticate(token + "x") is None
        assert await auth.authenticate(token[:-1]) is None
        [listed] = await tokens.list()
        assert listed.last_used_at_ms == int(clock.now * 1000)
    finally:
        await auth.aclose()


async def test_revocation_takes_effect_when_the_cache_entry_ages_out(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    tokens = TokenStore(store, clock=clock)
    token, record = await tokens.create(TokenKind.CLIENT)
    auth = await authenticator(tmp_path, clock, cache_ttl_s=30.0)
    try:
        assert await auth.authenticate(token) is not None
        await tokens.revoke(record.id)
        clock.now += 29
        assert await auth.authenticate(token) is not None  # cached: no DB query
        clock.now += 2
        assert await auth.authenticate(token) is None
        assert (await tokens.list())[0].status(int(clock.now * 1000)) == "revoked"
    finally:
        await auth.aclose()


async def test_cache_hits_do_not_query_the_store(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    token, _ = await TokenStore(store, clock=clock).create(TokenKind.CLIENT)
    auth = await authenticator(tmp_path, clock)
    try:
        assert await auth.authenticate(token) is not None
        await auth.aclose()  # the store is gone; a cache hit must not need it
        assert await auth.authenticate(token) is not None
    finally:
        await auth.aclose()


async def test_expired_token_is_refused_and_cache_never_outlives_expiry(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    tokens = TokenStore(store, clock=clock)
    token, _ = await tokens.create(TokenKind.CLIENT, expires_in_s=10)
    auth = await authenticator(tmp_path, clock, cache_ttl_s=300.0)
    try:
        assert await auth.authenticate(token) is not None
        clock.now += 10
        assert await auth.authenticate(token) is None
        assert (await tokens.list())[0].status(int(clock.now * 1000)) == "expired"
    finally:
        await auth.aclose()


async def test_fixed_tokens_need_no_store_and_keep_their_kind() -> None:
    auth = Authenticator(fixed_tokens={"secret-one": TokenKind.CLIENT, "adm": TokenKind.ADMIN})
    await auth.start()
    client = await auth.authenticate("secret-one")
    admin = await auth.authenticate("adm")
    assert client is not None and client.kind is TokenKind.CLIENT and client.source == "config"
    assert admin is not None and admin.kind is TokenKind.ADMIN
    assert await auth.authenticate("secret-on") is None
    assert await Authenticator().authenticate("anything") is None


async def test_revoke_keeps_the_first_time_and_unknown_ids_are_none(store: Store) -> None:
    clock = Clock()
    tokens = TokenStore(store, clock=clock)
    _, record = await tokens.create(TokenKind.CLIENT)
    first = await tokens.revoke(record.id)
    clock.now += 5
    again = await tokens.revoke(record.id)
    assert first is not None and again is not None
    assert first.revoked_at_ms == again.revoked_at_ms
    assert await tokens.revoke("tok_nope") is None
    assert not await tokens.has_active(TokenKind.CLIENT)


async def test_bad_names_and_lifetimes_are_refused(store: Store) -> None:
    tokens = TokenStore(store)
    with pytest.raises(PalyraError, match="limit is 128"):
        await tokens.create(TokenKind.CLIENT, name="x" * 129)
    for days in (0, -1, 36_501, 1e300, float("inf"), float("nan")):
        with pytest.raises(PalyraError, match="must be positive and at most 36500 days"):
            await tokens.create(TokenKind.CLIENT, expires_in_s=days * 86_400)
    assert await tokens.list() == []


def test_token_record_repr_has_no_hash() -> None:
    record = TokenRecord("tok_1", TokenKind.CLIENT, "n", 0, None, None, None, "deadbeef" * 8)
    assert "deadbeef" not in repr(record)
    assert "deadbeef" not in str(record.public_dict(0))
