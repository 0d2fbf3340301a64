"""``/console/v1``: auth profiles, provider sign-in, provider health and daemon tokens.

The guard admits admin tokens only here; the OpenAI OAuth callback is the one open path, and
it answers with an HTML page. Store, vault and profile registry are opened on first use from
``[storage] url`` (the vault key comes from the same places the CLI looks), so a daemon that
never uses the console never touches them. No response carries an API key, an OAuth token or a
daemon token, except ``POST /console/v1/tokens``, which returns the new token once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from palyra.auth.api_key import (
    ANTHROPIC_BASE_URL,
    OPENAI_BASE_URL,
    connect_anthropic_api_key,
    connect_openai_api_key,
)
from palyra.auth.oauth import (
    OPENAI_OAUTH_ATTEMPT_TTL_S,
    OPENAI_OAUTH_CALLBACK_PATH,
    complete_openai_oauth_callback,
    oauth_attempt_status,
    start_openai_oauth_attempt,
)
from palyra.auth.oauth_config import DEFAULT_VALIDATION_BASE_URL, OpenAIOAuthConfig
from palyra.auth.records import GLOBAL_SCOPE, agent_scope
from palyra.auth.refresh import OAuthRefresher
from palyra.auth.registry import DEFAULT_PAGE, AuthProfileRegistry
from palyra.config.schema import LimitSpec
from palyra.daemon.security.policy import Principal
from palyra.daemon.security.tokens_store import MAX_LIFETIME_DAYS, TokenKind, TokenStore
from palyra.daemon.state import AppState
from palyra.daemon.surfaces.console.agents_api import mount_agents
from palyra.daemon.surfaces.console.console_format import (
    SESSION_COOKIE,
    SESSION_HEADER,
    callback_headers,
    forwarded_header,
    group_health,
    json_response,
    loopback_redirect_uri,
    refuse_proxied,
    session_cookie,
    session_id,
)
from palyra.daemon.surfaces.console.upstream_urls import (
    as_console_error,
    check_console_url,
    refused,
)
from palyra.daemon.surfaces.console.usage_api import check_models, mount_usage
from palyra.daemon.surfaces.openapi_docs import error_responses, html_responses
from palyra.model import FailureClass, PalyraError
from palyra.net.base_url import base_url_problem
from palyra.paths import state_dir
from palyra.providers.upstream.guard import make_upstream_client
from palyra.routing.health import HealthTracker
from palyra.sharedstate import publish_revoked
from palyra.store import Store, open_store
from palyra.vault import KeyResolver, Vault
from palyra.vault.keys import system_keyring

PREFIX = "/console/v1"
UPSTREAM_TIMEOUT_S = 10.0


@dataclass
class ConsoleServices:
    """What console handlers use; opened once, closed at shutdown."""

    store: Store
    vault: Vault
    registry: AuthProfileRegistry
    client: httpx2.AsyncClient
    refresher: OAuthRefresher
    # Derives per-admin OAuth session ids. From the master key, so every worker and replica
    # (and the same daemon after a restart) derives the same ids.
    session_secret: bytes

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.store.aclose()


class ConsoleHub:
    """Opens :class:`ConsoleServices` lazily (once, even under concurrent first requests)."""

    def __init__(self, state: AppState, *, environ: Mapping[str, str] | None = None) -> None:
        self.state = state
        self._environ = environ
        self._services: ConsoleServices | None = None
        self._lock: asyncio.Lock | None = None

    async def services(self) -> ConsoleServices:
        if self._services is not None:
            return self._services
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._services is None:
                self._services = await self._open()
        return self._services

    async def _open(self) -> ConsoleServices:
        # The daemon state's own state dir and environment when it carries them (tests do).
        environ = dict(self._environ or getattr(self.state, "environ", None) or os.environ)
        directory = getattr(self.state, "state_dir", None) or state_dir()
        store = await open_store(self.state.config.storage.url, state_dir=directory)
        try:
            keys = KeyResolver(directory, environ=environ, keyring=system_keyring())
            vault = await Vault.open(store, keys, clock=self.state.clock)
            registry = AuthProfileRegistry(store, vault, self.state.clock)
        except BaseException:
            await store.aclose()
            raise
        client = make_upstream_client(allow_private=False, timeout_s=UPSTREAM_TIMEOUT_S)
        refresher = OAuthRefresher(registry, vault, client=client, clock=self.state.clock)
        secret = vault.derive_key("console oauth session v1")
        return ConsoleServices(store, vault, registry, client, refresher, secret)

    async def aclose(self) -> None:
        if self._services is not None:
            await self._services.aclose()
            self._services = None


def _hub(request: Request) -> ConsoleHub:
    hub: ConsoleHub = request.app.state.console
    return hub


async def _services(request: Request) -> ConsoleServices:
    return await _hub(request).services()


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


# --- auth profiles ---


async def list_profiles(
    request: Request,
    provider: str | None = None,
    agent: str | None = None,
    scope: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> Response:
    """One page of profiles; ``next_cursor`` is passed back as ``cursor`` for the next."""
    registry = (await _services(request)).registry
    page = await registry.list(
        provider=provider, scope=scope, agent_id=agent, limit=limit, cursor=cursor
    )
    return json_response(
        {"data": [r.public_dict() for r in page.items], "next_cursor": page.next_cursor}
    )


async def get_profile(request: Request, profile_id: str) -> Response:
    record = await (await _services(request)).registry.get(profile_id)
    return json_response(record.public_dict())


async def delete_profile(request: Request, profile_id: str) -> Response:
    """Deletes the profile and its vault secrets."""
    if not await (await _services(request)).registry.delete(profile_id):
        raise PalyraError.of(
            FailureClass.NOT_FOUND,
            f"there is no auth profile {profile_id!r} to delete; see GET {PREFIX}/auth/profiles",
        )
    return json_response({"id": profile_id, "deleted": True})


class OrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    ids: list[str]
    agent: str | None = None


async def set_order(request: Request, body: OrderBody) -> Response:
    registry = (await _services(request)).registry
    ordered = await registry.set_order(body.provider, body.ids, agent_id=body.agent)
    return json_response({"data": [r.public_dict() for r in ordered]})


async def clear_cooldown(request: Request, profile_id: str) -> Response:
    record = await (await _services(request)).registry.clear_cooldown(profile_id)
    return json_response(record.public_dict())


async def doctor(request: Request, agent: str | None = None) -> Response:
    findings = await (await _services(request)).registry.doctor(agent_id=agent)
    return json_response({"findings": [f.as_dict() for f in findings], "ok": not findings})


async def explain_selection(request: Request, provider: str, agent: str | None = None) -> Response:
    selection = await (await _services(request)).registry.explain_selection(provider, agent)
    return json_response(selection.as_dict())


def _as_request_error(exc: PalyraError) -> PalyraError:
    """A provider's 401/403 means a bad credential in the request, not a bad admin token, and
    a config error here comes from the request's base URL: both are the caller's 400."""
    envelope = exc.envelope
    if envelope.http_status in (401, 403) or envelope.failure_class is FailureClass.CONFIG:
        return PalyraError(envelope.model_copy(update={"http_status": 400}))
    return exc


async def refresh_profile(request: Request, profile_id: str) -> Response:
    """Refresh an OpenAI OAuth profile now (single-flight with routing's refreshes)."""
    try:
        outcome = await (await _services(request)).refresher.refresh(profile_id, force=True)
    except PalyraError as exc:
        raise _as_request_error(as_console_error(exc, "token_endpoint")) from None
    expires = outcome.expires_at.isoformat() if outcome.expires_at else None
    return json_response(
        {"id": outcome.profile_id, "result": outcome.result.value, "expires_at": expires}
    )


# --- API keys ---


class ApiKeyBody(BaseModel):
    """``api_key`` is write-only: it is checked against the provider, stored, never echoed."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    profile_id: str
    api_key: str = Field(repr=False)
    base_url: str | None = None
    name: str | None = None
    agent: str | None = None
    # Refused when present: private upstreams are the operator's to allow (see upstream_urls).
    allow_private: SkipJsonSchema[object] = Field(default=None, exclude=True)

    @field_validator("allow_private", mode="before")
    @classmethod
    def _operator_only(cls, value: object) -> object:
        raise PydanticCustomError(
            "operator_only",
            "is not accepted: a request cannot allow private upstreams; the operator allows one "
            "with allow_private_base_url = true on its [[model_provider.providers]] entry in "
            "palyra.toml, and the console then reaches that base URL's scheme, host and port",
        )

    @field_validator("api_key")
    @classmethod
    def _sendable(cls, value: str) -> str:
        """An HTTP header carries the key, so only printable ASCII can be checked or used."""
        if not value.isascii() or not value.isprintable():
            raise ValueError(
                "the API key has characters an HTTP header cannot carry; "
                "paste the key again exactly as the provider shows it"
            )
        return value


async def connect_api_key(
    request: Request, provider: Literal["openai", "anthropic"], body: ApiKeyBody
) -> Response:
    connect, default_url = (
        (connect_openai_api_key, OPENAI_BASE_URL)
        if provider == "openai"
        else (connect_anthropic_api_key, ANTHROPIC_BASE_URL)
    )
    base_url = body.base_url or default_url
    # Before the store is opened or anything is contacted, whatever the address.
    allow_private = check_console_url(base_url, config=_hub(request).state.config, param="base_url")
    registry = (await _services(request)).registry
    scope = agent_scope(body.agent) if body.agent else GLOBAL_SCOPE
    try:
        record = await connect(
            registry,
            profile_id=body.profile_id,
            api_key=body.api_key,
            base_url=base_url,
            display_name=body.name,
            scope=scope,
            allow_private=allow_private,
        )
    except PalyraError as exc:
        raise _as_request_error(as_console_error(exc, "base_url")) from None
    return json_response(record.public_dict(), status=201)


# --- OpenAI OAuth ---


class OAuthStartBody(BaseModel):
    """Like ``palyra auth openai login``: another issuer is for tests and proxies of OpenAI."""

    model_config = ConfigDict(extra="forbid")

    profile_id: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    scopes: str | None = None
    validate_url: str | None = DEFAULT_VALIDATION_BASE_URL


def _session(request: Request, services: ConsoleServices) -> str:
    principal = _principal(request)
    identity = f"{principal.kind.value}:{principal.source}:{principal.token_id or '-'}"
    return session_id(request.headers.get(SESSION_HEADER), identity, services.session_secret)


def _oauth_config(body: OAuthStartBody) -> OpenAIOAuthConfig:
    """The sign-in's endpoints; a bad issuer or validate_url is the caller's 400 naming it, and
    a non-public one gets the console's one refusal (the sign-in client never reaches one)."""
    for param, url in (("issuer", body.issuer), ("validate_url", body.validate_url)):
        if url:
            problem = base_url_problem(url, allow_private=False, what=param)
            if problem is not None and problem.address:
                raise refused(param)
            if problem is not None:
                raise PalyraError.of(FailureClass.INVALID_REQUEST, problem.message, param=param)
    overrides: dict[str, str | None] = {"validation_base_url": body.validate_url or None}
    if body.client_id:
        overrides["client_id"] = body.client_id
    try:
        if body.issuer:
            return OpenAIOAuthConfig.for_issuer(body.issuer, **overrides)
        return OpenAIOAuthConfig(**overrides)  # type: ignore[arg-type]
    except PalyraError as exc:
        raise PalyraError(
            exc.envelope.model_copy(
                update={"failure_class": FailureClass.INVALID_REQUEST, "http_status": 400}
            )
        ) from None


async def oauth_start(request: Request, body: OAuthStartBody | None = None) -> Response:
    """Start a sign-in; the session cookie binds the callback to the browser that started it."""
    body = body or OAuthStartBody()
    proxied = forwarded_header(request.headers.keys())
    if proxied is not None:
        raise refuse_proxied(proxied)
    redirect_uri = loopback_redirect_uri(request.scope.get("server"))
    services = await _services(request)
    session = _session(request, services)
    started = await start_openai_oauth_attempt(
        services.store,
        redirect_uri=redirect_uri,
        session_id=session,
        config=_oauth_config(body),
        clock=_hub(request).state.clock,
        scopes=body.scopes,
        profile_id=body.profile_id,
    )
    payload = {
        "attempt_id": started.attempt_id,
        "authorization_url": started.authorization_url,
        "redirect_uri": redirect_uri,
        "expires_at": started.expires_at,
    }
    cookie = session_cookie(session, OPENAI_OAUTH_ATTEMPT_TTL_S)
    return json_response(payload, status=201, headers={"set-cookie": cookie})


async def oauth_status(request: Request, attempt_id: str) -> Response:
    services = await _services(request)
    view = await oauth_attempt_status(
        services.store, attempt_id, _session(request, services), clock=_hub(request).state.clock
    )
    return json_response(
        {
            "attempt_id": view.attempt_id,
            "status": view.status.value,
            "message": view.message,
            "profile_id": view.profile_id,
            "expires_at": view.expires_at,
            "completed_at": view.completed_at,
        }
    )


async def oauth_callback(request: Request) -> Response:
    """The browser's redirect target (open path): finish the attempt, show the result page."""
    services = await _services(request)
    result = await complete_openai_oauth_callback(
        services.store,
        services.registry,
        services.vault,
        query=dict(request.query_params),
        session_id=request.cookies.get(SESSION_COOKIE),
        client=services.client,
        clock=_hub(request).state.clock,
    )
    headers = callback_headers(result.html)
    response = Response(
        result.html, status_code=result.http_status, media_type="text/html", headers=headers
    )
    if result.attempt_id is not None and result.http_status != 403:
        # The attempt is settled: the cookie has done its job (a stray request keeps it).
        response.headers["set-cookie"] = session_cookie("", 0)
    return response


# --- provider health ---


async def providers_health(request: Request) -> Response:
    """Health per provider, model and credential with breaker states; empty until the
    routing runtime is on the daemon state."""
    runtime = getattr(_hub(request).state, "runtime", None)
    tracker = getattr(runtime, "health", None)
    rows = [s.to_dict() for s in tracker.snapshot()] if isinstance(tracker, HealthTracker) else []
    return json_response(group_health(rows))


# --- daemon tokens ---


def _tokens(request: Request) -> TokenStore:
    store = _hub(request).state.auth.tokens
    if store is None:
        raise PalyraError.of(
            FailureClass.CONFIG,
            "this daemon has no token store (it runs with fixed tokens only), so tokens cannot "
            "be listed or changed here; start it with a [storage] url and use: palyra token",
            http_status=409,
        )
    return store


async def list_tokens(request: Request) -> Response:
    store = _tokens(request)
    now = store.now_ms()
    return json_response({"data": [r.public_dict(now) for r in await store.list()]})


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: TokenKind = TokenKind.CLIENT
    name: str = ""
    expires_days: float | None = Field(
        default=None, gt=0, le=MAX_LIFETIME_DAYS, allow_inf_nan=False
    )
    agent: str | None = None  # bind a client token to an agent (its requests use its profiles)
    limits: LimitSpec | None = None  # a client token's limits and budgets (see palyra usage)


async def create_token(request: Request, body: TokenBody) -> Response:
    """The new token is in this response only; the store keeps its hash."""
    store = _tokens(request)
    expires = None if body.expires_days is None else body.expires_days * 86400
    if body.limits is not None:
        check_models(_hub(request).state, body.limits)
    token, record = await store.create(
        body.kind, name=body.name, expires_in_s=expires, agent_id=body.agent, limits=body.limits
    )
    created = {**record.public_dict(store.now_ms()), "token": token}
    return json_response(created, status=201, headers={"cache-control": "no-store"})


async def revoke_token(request: Request, token_id: str) -> Response:
    store = _tokens(request)
    record = await store.revoke(token_id)
    if record is None:
        raise PalyraError.of(
            FailureClass.NOT_FOUND,
            f"there is no daemon token {token_id!r}; see GET {PREFIX}/tokens",
        )
    state = _hub(request).state
    state.auth.forget_all()  # refused from the next request, not after the TTL
    if state.shared is not None:  # and by every other replica as soon as the notice arrives
        await publish_revoked(state.shared, record.id)
    return json_response(record.public_dict(store.now_ms()))


def mount_console(app: FastAPI, state: AppState) -> ConsoleHub:
    """Add every console route to ``app``; the caller closes the returned hub at shutdown."""
    hub = ConsoleHub(state)
    app.state.console = hub
    auth = f"{PREFIX}/auth"
    # (path, endpoint, method, statuses besides the success one) — what each route can answer.
    base, ids, upstream = (400, 401, 500), (400, 401, 404, 500), (429, 502, 503, 504)
    routes: list[tuple[str, Callable[..., Awaitable[Response]], str, tuple[int, ...]]] = [
        (f"{auth}/profiles", list_profiles, "GET", base),
        (f"{auth}/profiles/order", set_order, "PUT", (*ids, 413)),
        (f"{auth}/profiles/{{profile_id}}", get_profile, "GET", ids),
        (f"{auth}/profiles/{{profile_id}}", delete_profile, "DELETE", ids),
        (f"{auth}/profiles/{{profile_id}}/cooldown-clear", clear_cooldown, "POST", ids),
        (f"{auth}/profiles/{{profile_id}}/refresh", refresh_profile, "POST", (*ids, *upstream)),
        (f"{auth}/doctor", doctor, "GET", base),
        (f"{auth}/explain-selection", explain_selection, "GET", ids),
        (
            f"{auth}/providers/{{provider}}/api-key",
            connect_api_key,
            "POST",
            (*base, 413, *upstream),
        ),
        (f"{auth}/providers/openai/oauth/start", oauth_start, "POST", (*base, 413)),
        (f"{auth}/providers/openai/oauth/{{attempt_id}}", oauth_status, "GET", ids),
        (f"{PREFIX}/providers/health", providers_health, "GET", (401, 500)),
        (f"{PREFIX}/tokens", list_tokens, "GET", (401, 409, 500)),
        (f"{PREFIX}/tokens", create_token, "POST", (*base, 409, 413)),
        (f"{PREFIX}/tokens/{{token_id}}", revoke_token, "DELETE", (*ids, 409)),
    ]
    for path, endpoint, method, statuses in routes:
        app.add_api_route(path, endpoint, methods=[method], responses=error_responses(statuses))
    mount_agents(app)
    mount_usage(app)
    # The one open path answers a browser: an HTML page whatever the outcome.
    app.add_api_route(
        OPENAI_OAUTH_CALLBACK_PATH,
        oauth_callback,
        methods=["GET"],
        response_class=HTMLResponse,
        responses={**html_responses((400, 403, 409, 502)), **error_responses((500,))},
    )
    return hub
