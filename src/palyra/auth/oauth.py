"""OpenAI sign-in with OAuth 2.0 authorization code + PKCE: start an attempt, finish it from
the browser's callback, and let the console poll it.

The flow is framework-agnostic: the daemon mounts :func:`complete_openai_oauth_callback` at
:data:`OPENAI_OAUTH_CALLBACK_PATH`, the CLI calls it from its loopback listener.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlencode

import httpx2

from palyra.auth.oauth_attempts import (
    OAUTH_SCHEMA,
    RETAIN_MS,
    AttemptStatus,
    OAuthAttempt,
    claim_for_exchange,
    find_by_state_hash,
    finish_attempt,
    get_attempt,
    insert_attempt,
)
from palyra.auth.oauth_callback_page import render_callback_page
from palyra.auth.oauth_config import OpenAIOAuthConfig, check_endpoint, normalize_scopes
from palyra.auth.oauth_profile import persist_openai_auth_profile
from palyra.auth.oauth_tokens import exchange_authorization_code, validate_openai_bearer_token
from palyra.auth.pkce import (
    RandomBytes,
    digest,
    generate_attempt_id,
    generate_pkce_verifier,
    generate_state,
    open_verifier,
    pkce_challenge,
    seal_verifier,
)
from palyra.auth.registry import AuthProfileRegistry
from palyra.model import FailureClass, PalyraError
from palyra.net.base_url import ADDRESS_REFUSED
from palyra.store import Store
from palyra.vault import Vault

OPENAI_OAUTH_CALLBACK_PATH = "/console/v1/auth/providers/openai/callback"
OPENAI_OAUTH_ATTEMPT_TTL_S = 600
PROVIDER = "openai"

WallClock = Callable[[], float]


class OAuthStart(NamedTuple):
    """What the caller needs to send the user to OpenAI and later poll the outcome."""

    attempt_id: str
    authorization_url: str
    expires_at: float


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def build_authorization_url(
    config: OpenAIOAuthConfig,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: str,
    code_challenge: str,
    state: str,
) -> str:
    """The authorize URL with exactly the parameters OpenAI's PKCE flow expects."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scopes,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "state": state,
        }
    )
    return f"{config.authorization_endpoint}?{query}"


async def start_openai_oauth_attempt(
    store: Store,
    *,
    redirect_uri: str,
    session_id: str,
    config: OpenAIOAuthConfig,
    clock: WallClock,
    client_id: str | None = None,
    scopes: str | None = None,
    profile_id: str | None = None,
    random: RandomBytes = os.urandom,
) -> OAuthStart:
    """Record a pending attempt bound to ``session_id`` and return the URL to open.

    ``state`` is fresh randomness (never the attempt id) and only its digest is stored.
    """
    if not session_id:
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            "an OpenAI OAuth attempt needs the id of the session that starts it",
        )
    check_endpoint(redirect_uri, what="redirect_uri")
    await store.migrate(OAUTH_SCHEMA)
    client_id = (client_id or config.client_id).strip()
    scope = normalize_scopes(scopes if scopes is not None else config.scopes)
    verifier = generate_pkce_verifier(random)
    state = generate_state(random)
    now = clock()
    expires_at = now + OPENAI_OAUTH_ATTEMPT_TTL_S
    attempt = OAuthAttempt(
        attempt_id=generate_attempt_id(random),
        state_hash=digest(state),
        session_hash=digest(session_id),
        provider=PROVIDER,
        status=AttemptStatus.PENDING,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scope,
        token_endpoint=config.token_endpoint,
        validation_base_url=config.validation_base_url,
        profile_id=profile_id,
        code_verifier=seal_verifier(verifier, state, random),
        message="Waiting for the OpenAI sign-in callback.",
        result_profile_id=None,
        created_at_ms=_ms(now),
        expires_at_ms=_ms(expires_at),
        completed_at_ms=None,
    )
    await insert_attempt(store, attempt, purge_before_ms=_ms(now) - RETAIN_MS)
    url = build_authorization_url(
        config,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scope,
        code_challenge=pkce_challenge(verifier),
        state=state,
    )
    return OAuthStart(attempt.attempt_id, url, expires_at)


@dataclass(frozen=True)
class CallbackResult:
    """The callback's outcome: an HTTP status and page for the browser, plus the facts."""

    succeeded: bool
    http_status: int
    message: str
    html: str
    attempt_id: str | None = None
    profile_id: str | None = None


def _result(
    ok: bool, status: int, message: str, attempt_id: str | None, profile_id: str | None = None
) -> CallbackResult:
    title = "OpenAI Connected" if ok else "OpenAI Connection Failed"
    page = render_callback_page(
        title=title,
        body=message,
        payload={"attempt_id": attempt_id, "status": "succeeded" if ok else "failed"},
    )
    return CallbackResult(ok, status, message, page, attempt_id, profile_id)


def _same_session(attempt: OAuthAttempt, session_id: str | None) -> bool:
    return session_id is not None and hmac.compare_digest(attempt.session_hash, digest(session_id))


async def complete_openai_oauth_callback(
    store: Store,
    registry: AuthProfileRegistry,
    vault: Vault,
    *,
    query: Mapping[str, str],
    session_id: str | None,
    client: httpx2.AsyncClient,
    clock: WallClock,
) -> CallbackResult:
    """Finish an attempt from the redirect's query string; safe against replays and races."""
    await store.migrate(OAUTH_SCHEMA)
    state = query.get("state", "")
    attempt = await find_by_state_hash(store, digest(state)) if state else None
    if attempt is None:
        return _result(
            False,
            400,
            "This sign-in link is unknown or was already replaced (the state parameter does not "
            "match any OpenAI sign-in in progress); start again with: palyra auth openai login",
            None,
        )
    if not _same_session(attempt, session_id):
        return _result(
            False,
            403,
            "This OpenAI sign-in was started from another session; finish it in the browser "
            "session that started it, or start again",
            attempt.attempt_id,
        )
    if attempt.status is not AttemptStatus.PENDING:
        return _result(
            False,
            409,
            f"This OpenAI sign-in callback was already used (the attempt is "
            f"{attempt.status.value}); nothing was changed",
            attempt.attempt_id,
        )
    now_ms = _ms(clock())
    if now_ms >= attempt.expires_at_ms:
        return await _fail(
            store,
            attempt,
            410,
            "This OpenAI sign-in expired (attempts last 10 minutes); start again",
            now_ms,
        )
    error = query.get("error")
    if error:
        if error == "access_denied":
            message = "Access was denied on the OpenAI sign-in page; nothing was saved"
        else:
            code = error if error.replace("_", "").isalnum() and len(error) <= 64 else "unknown"
            message = f"OpenAI sign-in failed ({code}); nothing was saved, start again"
        return await _fail(store, attempt, 400, message, now_ms)
    code = query.get("code", "")
    if not code:
        return _result(
            False,
            400,
            "The OpenAI sign-in callback has no authorization code; open the link from the "
            "sign-in page again",
            attempt.attempt_id,
        )
    claimed = await claim_for_exchange(store, attempt.attempt_id, now_ms)
    if claimed is None:
        return _result(
            False,
            409,
            "This OpenAI sign-in callback is already being processed; nothing was changed",
            attempt.attempt_id,
        )
    try:
        tokens = await exchange_authorization_code(
            client,
            token_endpoint=claimed.token_endpoint,
            client_id=claimed.client_id,
            code=code,
            redirect_uri=claimed.redirect_uri,
            code_verifier=open_verifier(claimed.code_verifier, state),
        )
        if claimed.validation_base_url is not None:
            await validate_openai_bearer_token(
                tokens.access_token, claimed.validation_base_url, client
            )
        record = await persist_openai_auth_profile(
            registry,
            vault,
            tokens=tokens,
            profile_id=claimed.profile_id,
            token_endpoint=claimed.token_endpoint,
            client_id=claimed.client_id,
            scopes=claimed.scopes,
            clock=clock,
        )
    except PalyraError as exc:
        status = 502 if exc.envelope.retryable else 400
        message = f"OpenAI sign-in failed: {exc.envelope.message}"
        if exc.envelope.code == ADDRESS_REFUSED:  # the same words whatever the address was
            message = (
                "OpenAI sign-in failed: the token endpoint or validation URL is not a public "
                "address, so it was not contacted; nothing was saved, start again with a "
                "public issuer"
            )
        return await _fail(store, claimed, status, message, now_ms)
    except BaseException:
        await finish_attempt(
            store,
            claimed.attempt_id,
            status=AttemptStatus.FAILED,
            message="OpenAI sign-in failed with an internal error; see the daemon log",
            now_ms=_ms(clock()),
        )
        raise
    message = f"OpenAI is connected as auth profile {record.profile_id!r}"
    await finish_attempt(
        store,
        claimed.attempt_id,
        status=AttemptStatus.SUCCEEDED,
        message=message,
        now_ms=_ms(clock()),
        profile_id=record.profile_id,
    )
    return _result(True, 200, message, claimed.attempt_id, record.profile_id)


async def _fail(
    store: Store, attempt: OAuthAttempt, status: int, message: str, now_ms: int
) -> CallbackResult:
    await finish_attempt(
        store, attempt.attempt_id, status=AttemptStatus.FAILED, message=message, now_ms=now_ms
    )
    return _result(False, status, message, attempt.attempt_id)


@dataclass(frozen=True)
class AttemptView:
    """What polling shows; never the state, the verifier or a token."""

    attempt_id: str
    status: AttemptStatus
    message: str
    profile_id: str | None
    expires_at: float
    completed_at: float | None


async def oauth_attempt_status(
    store: Store, attempt_id: str, session_id: str, *, clock: WallClock
) -> AttemptView:
    """The attempt as its own session sees it; an expired pending attempt is failed here."""
    await store.migrate(OAUTH_SCHEMA)
    attempt = await get_attempt(store, attempt_id)
    if attempt is None or not _same_session(attempt, session_id):
        raise PalyraError.of(
            FailureClass.NOT_FOUND,
            f"there is no OpenAI sign-in attempt {attempt_id!r} in this session; start one with: "
            "palyra auth openai login",
        )
    now_ms = _ms(clock())
    if attempt.status is AttemptStatus.PENDING and now_ms >= attempt.expires_at_ms:
        await finish_attempt(
            store,
            attempt_id,
            status=AttemptStatus.FAILED,
            message="This OpenAI sign-in expired (attempts last 10 minutes); start again",
            now_ms=now_ms,
        )
        attempt = await get_attempt(store, attempt_id) or attempt
    return AttemptView(
        attempt_id=attempt.attempt_id,
        status=attempt.status,
        message=attempt.message,
        profile_id=attempt.result_profile_id,
        expires_at=attempt.expires_at_ms / 1000,
        completed_at=attempt.completed_at_ms / 1000 if attempt.completed_at_ms else None,
    )
