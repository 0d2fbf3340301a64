"""The web console's sign-in, session and sign-out, and the OpenAPI document for its docs page.

``POST /console/v1/sign-in`` is open: it takes an admin token once and answers with an HttpOnly
session cookie (see :mod:`palyra.daemon.security.console_sessions`) and the session's CSRF token,
which the page keeps in memory only. The admin token itself is never stored by the browser.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from palyra.daemon.security.auth_guard import SESSION_STATE
from palyra.daemon.security.console_sessions import (
    ConsoleSession,
    cookie_header,
    csrf_token,
)
from palyra.daemon.security.policy import SIGN_IN_PATH, Principal
from palyra.daemon.security.tokens_store import TokenKind, hash_token
from palyra.daemon.state import AppState
from palyra.daemon.surfaces.console.console_format import json_response
from palyra.daemon.surfaces.openapi_docs import error_responses
from palyra.model import FailureClass, PalyraError

SESSION_PATH = "/console/v1/session"
OPENAPI_PATH = "/console/v1/openapi.json"
NO_STORE = {"cache-control": "no-store"}


class SignInBody(BaseModel):
    """``token`` is write-only: it is checked, hashed into the session, never echoed."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: str = Field(repr=False, min_length=1, max_length=512)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.palyra
    return state


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _session_view(
    principal: Principal, value: str | None, session: ConsoleSession | None
) -> dict[str, object]:
    return {
        "principal": principal.public_dict(),
        "csrf_token": csrf_token(value) if value else None,
        "expires_at": _iso(session.expires_at_ms) if session else None,
    }


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def _check_browser_request(request: Request) -> None:
    """A sign-in comes from this daemon's own page as JSON: a form post from another site
    (which could sign a victim's browser into an attacker's session) is refused."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/json":
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f'POST {SIGN_IN_PATH} takes a JSON body ({{"token": "pla_..."}}) with '
            "content-type: application/json",
            param="content-type",
            http_status=415,
        )
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise PalyraError.of(
            FailureClass.PERMISSION_DENIED,
            f"a sign-in from the page of another origin ({origin}) is refused; open the console "
            f"at {_own_origin(request)}/console",
            http_status=403,
        )


async def sign_in(request: Request, body: SignInBody) -> Response:
    _check_browser_request(request)
    auth = _state(request).auth
    token = body.token.strip()
    principal = await auth.authenticate(token)
    if principal is None or principal.kind is not TokenKind.ADMIN:
        raise PalyraError.of(
            FailureClass.AUTH_INVALID,
            "that token does not sign in: it is unknown, expired or revoked, or it is not an "
            "admin token. Create an admin token with: palyra token create --admin",
            code="invalid_api_key",
            param="token",
        )
    value, session = await auth.sessions.start(hash_token(token))
    cookie = cookie_header(value, auth.sessions.ttl_s, secure=request.url.scheme == "https")
    view = _session_view(principal, value, session)
    return json_response(view, status=201, headers={**NO_STORE, "set-cookie": cookie})


async def current_session(request: Request) -> Response:
    """Who is signed in, with the session's CSRF token (null for a bearer-token caller)."""
    principal: Principal = request.state.principal
    value: str | None = getattr(request.state, SESSION_STATE, None)
    session = await _state(request).auth.sessions.find(value) if value else None
    return json_response(_session_view(principal, value, session), headers=NO_STORE)


async def sign_out(request: Request) -> Response:
    """Ends the session on the server (the cookie is worth nothing afterwards, wherever it is)."""
    value: str | None = getattr(request.state, SESSION_STATE, None)
    if value is None:
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            "this request carries no console session to end (a bearer token is revoked with "
            "palyra token revoke, not signed out)",
        )
    ended = await _state(request).auth.sessions.end(value)
    secure = request.url.scheme == "https"
    headers = {**NO_STORE, "set-cookie": cookie_header("", 0, secure=secure)}
    return json_response({"signed_out": ended}, headers=headers)


async def openapi_document(request: Request) -> Response:
    """The daemon's OpenAPI document for the console's docs page (admins only)."""
    app: FastAPI = request.app
    return json_response(app.openapi())


def mount_session(app: FastAPI) -> None:
    app.add_api_route(
        SIGN_IN_PATH,
        sign_in,
        methods=["POST"],
        status_code=201,
        responses=error_responses((400, 401, 403, 413)),
    )
    app.add_api_route(
        SESSION_PATH, current_session, methods=["GET"], responses=error_responses((401,))
    )
    app.add_api_route(
        SESSION_PATH, sign_out, methods=["DELETE"], responses=error_responses((400, 401, 403))
    )
    app.add_api_route(
        OPENAPI_PATH,
        openapi_document,
        methods=["GET"],
        include_in_schema=False,
        responses=error_responses((401,)),
    )
