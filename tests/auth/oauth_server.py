"""A real OAuth 2.0 authorization server for tests: authlib's Flask integration, PKCE required,
refresh-token rotation with reuse detection, served by werkzeug on 127.0.0.1:0 in a thread.

``/oauth/authorize`` consents automatically (the "browser" just reads the 302 Location);
``/oauth/token`` counts its hits and can be told to fail; ``/v1/models`` checks a bearer token
the way a model API would.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from palyra.auth import AuthProfileRegistry
from palyra.auth.oauth import (
    CallbackResult,
    complete_openai_oauth_callback,
    start_openai_oauth_attempt,
)
from palyra.auth.oauth_config import OpenAIOAuthConfig
from palyra.store import Store
from palyra.vault import KeyResolver, Vault


@dataclass
class User:
    id: str
    email: str

    def get_user_id(self) -> str:
        return self.id


@dataclass
class Client:
    client_id: str
    redirect_uris: set[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return next(iter(self.redirect_uris))

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token:
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    user: User
    family: str
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked


def fake_id_token(claims: dict[str, Any]) -> str:
    """An unsigned JWT-shaped id token: Palyra reads it for display and must not trust it."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


@dataclass
class OAuthTestServer:
    """State and knobs of the running server; all counters are read from the test thread."""

    client_id: str = "palyra-test-client"
    redirect_uris: set[str] = field(default_factory=set)
    access_expires_in: int = 3600
    user: User = field(default_factory=lambda: User("user-1", "ada@example.test"))
    account_id: str = "acct-42"
    # Knobs the tests turn.
    fail_token_status: int | None = None
    omit_refresh_token: bool = False
    token_delay_s: float = 0.0
    reuse_detection: bool = True
    # Counters and storage.
    token_hits: int = 0
    code_grants: int = 0
    refresh_grants: int = 0
    invalid_grants: int = 0
    codes: dict[str, AuthCode] = field(default_factory=dict)
    tokens_by_refresh: dict[str, Token] = field(default_factory=dict)
    tokens_by_access: dict[str, Token] = field(default_factory=dict)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def issued_access_tokens(self) -> list[str]:
        return list(self.tokens_by_access)

    def issued_refresh_tokens(self) -> list[str]:
        return list(self.tokens_by_refresh)

    def expire_access_token(self, access_token: str) -> None:
        self.tokens_by_access[access_token].issued_at = 0.0


def build_app(state: OAuthTestServer) -> Flask:
    app = Flask(__name__)
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
        "authorization_code": state.access_expires_in,
        "refresh_token": state.access_expires_in,
    }

    def query_client(client_id: str) -> Client | None:
        if client_id == state.client_id:
            return Client(state.client_id, state.redirect_uris)
        return None

    def save_token(token: dict[str, Any], req: Any) -> None:
        previous: Token | None = getattr(req, "refresh_token", None)
        family = previous.family if previous else secrets.token_hex(8)
        if state.omit_refresh_token:
            token.pop("refresh_token", None)
        record = Token(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client_id=req.client.client_id,
            scope=token.get("scope", ""),
            user=req.user,
            family=family,
            issued_at=time.time(),
            expires_in=int(token["expires_in"]),
        )
        with state._lock:
            state.tokens_by_access[record.access_token] = record
            if record.refresh_token:
                state.tokens_by_refresh[record.refresh_token] = record
        if "openid" in record.scope.split():
            token["id_token"] = fake_id_token(
                {
                    "sub": state.user.id,
                    "email": state.user.email,
                    "https://api.openai.com/auth": {"chatgpt_account_id": state.account_id},
                }
            )

    class AuthCodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            state.codes[code] = AuthCode(
                code=code,
                client_id=req.client.client_id,
                redirect_uri=req.payload.redirect_uri,
                scope=req.payload.scope,
                user=req.user,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
            found = state.codes.get(code)
            return found if found and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: AuthCode) -> None:
            state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: AuthCode) -> User:
            with state._lock:
                state.code_grants += 1
            return authorization_code.user

    class RefreshGrant(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            with state._lock:
                found = state.tokens_by_refresh.get(refresh_token)
                if found is None:
                    return None
                if found.revoked and state.reuse_detection:
                    # Reuse of a rotated token: treat the whole family as stolen.
                    for token in state.tokens_by_refresh.values():
                        if token.family == found.family:
                            token.revoked = True
                    return None
                return None if found.revoked else found

        def authenticate_user(self, credential: Token) -> User:
            with state._lock:
                state.refresh_grants += 1
            return credential.user

        def revoke_old_credential(self, refresh_token: Token) -> None:
            with state._lock:
                refresh_token.revoked = True

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(AuthCodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshGrant)

    @app.get("/oauth/authorize")
    def authorize() -> Any:
        return server.create_authorization_response(grant_user=state.user)

    @app.post("/oauth/token")
    def token() -> Any:
        with state._lock:
            state.token_hits += 1
        if state.token_delay_s:
            time.sleep(state.token_delay_s)
        if state.fail_token_status is not None:
            return jsonify({"error": "server_error"}), state.fail_token_status
        response = server.create_token_response()
        if response.status_code == 400 and b"invalid_grant" in response.get_data():
            with state._lock:
                state.invalid_grants += 1
        return response

    @app.get("/v1/models")
    def models() -> Any:
        header = request.headers.get("Authorization", "")
        found = state.tokens_by_access.get(header.removeprefix("Bearer ").strip())
        if found is None or found.revoked or found.is_expired():
            return jsonify({"error": {"message": "invalid token", "type": "auth"}}), 401
        return jsonify({"object": "list", "data": [{"id": "gpt-test", "object": "model"}]})

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Request lines would carry codes and tokens in query strings; tests keep logs clean."""


class RunningServer:
    """The server on a real loopback port; ``stop()`` shuts it down and joins its thread."""

    def __init__(self, state: OAuthTestServer) -> None:
        self.state = state
        self._http = make_server(
            "127.0.0.1", 0, build_app(state), threaded=True, request_handler=_QuietHandler
        )
        state.base_url = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._thread.join(timeout=5)


REDIRECT_URI = "http://127.0.0.1:7142/console/v1/auth/providers/openai/callback"


async def browse(client: Any, authorization_url: str) -> dict[str, str]:
    """What a browser does after the user consents: GET the authorize URL, follow nothing,
    and return the query of the redirect back to Palyra."""
    from urllib.parse import parse_qsl, urlsplit

    response = await client.get(authorization_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


@contextmanager
def serving(**knobs: Any) -> Iterator[OAuthTestServer]:
    """A running server for one test (``REDIRECT_URI`` registered)."""
    state = OAuthTestServer(redirect_uris={REDIRECT_URI}, **knobs)
    running = RunningServer(state)
    try:
        yield state
    finally:
        running.stop()


SESSION = "console-session-1"


class Clock:
    """Injected wall clock (unix seconds) the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    """Everything a sign-in needs, wired to one test server and one real store."""

    server: OAuthTestServer
    store: Store
    vault: Vault
    registry: AuthProfileRegistry
    client: httpx2.AsyncClient
    clock: Clock
    config: OpenAIOAuthConfig

    async def start(self, session: str = SESSION, profile_id: str | None = None) -> tuple[str, str]:
        started = await start_openai_oauth_attempt(
            self.store,
            redirect_uri=REDIRECT_URI,
            session_id=session,
            config=self.config,
            clock=self.clock,
            profile_id=profile_id,
        )
        return started.attempt_id, started.authorization_url

    async def callback(
        self, query: dict[str, str], session: str | None = SESSION
    ) -> CallbackResult:
        return await complete_openai_oauth_callback(
            self.store,
            self.registry,
            self.vault,
            query=query,
            session_id=session,
            client=self.client,
            clock=self.clock,
        )

    async def sign_in(self, profile_id: str = "openai-oauth") -> str:
        """A whole successful sign-in; returns the profile id."""
        _, url = await self.start(profile_id=profile_id)
        result = await self.callback(await browse(self.client, url))
        assert result.succeeded, result.message
        return profile_id


@asynccontextmanager
async def oauth_env(
    server: OAuthTestServer, store: Store, tmp_path: Path, *, vault_key: str | None = None
) -> AsyncIterator[Env]:
    """``vault_key`` (base64, as ``PALYRA_VAULT_KEY`` takes it) for tests whose other
    processes open the same vault; a random one otherwise."""
    clock = Clock()
    key = vault_key or base64.b64encode(os.urandom(32)).decode()
    vault = await Vault.open(
        store, KeyResolver(state_dir=tmp_path, environ={"PALYRA_VAULT_KEY": key}), clock=clock
    )
    config = OpenAIOAuthConfig.for_issuer(
        server.base_url, client_id=server.client_id, validation_base_url=server.api_base_url
    )
    async with httpx2.AsyncClient() as client:
        yield Env(
            server, store, vault, AuthProfileRegistry(store, vault, clock), client, clock, config
        )
