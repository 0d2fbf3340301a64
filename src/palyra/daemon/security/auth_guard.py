"""Plain ASGI guard in front of every route: bearer tokens (or, on the console API, a console
session cookie with its CSRF token on every state-changing call), then the body size limit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from fastapi import HTTPException
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palyra.daemon.security.console_sessions import (
    CSRF_HEADER,
    SAFE_METHODS,
    cookie_value,
    csrf_matches,
)
from palyra.daemon.security.policy import (
    Access,
    Principal,
    admits,
    anthropic_caller,
    presented_tokens,
    required_access,
)
from palyra.model import ErrorEnvelope, FailureClass

if TYPE_CHECKING:
    from palyra.daemon.state import AppState

# Where the guard leaves the cookie value of the console session a request came with.
SESSION_STATE = "console_session"
# (path, envelope, whether the caller speaks Anthropic's API) -> the error response.
ErrorRenderer = Callable[[str, ErrorEnvelope, bool], Response]
_WANTED = {
    name.encode(): name
    for name in (
        "authorization",
        "x-api-key",
        "content-length",
        "x-request-id",
        "origin",
        "anthropic-version",
        "cookie",
        CSRF_HEADER,
    )
}


def too_large_message(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes; send less, or raise "
        "[daemon] max_body_bytes in palyra.toml"
    )


def unauthorized(path: str, access: Access, anthropic: bool = False) -> ErrorEnvelope:
    """The same message for a missing, wrong, expired or revoked token: no oracle, no echo."""
    how = "Authorization: Bearer <token>"
    if access is Access.ADMIN:
        need, create = "an admin token", "palyra token create --admin"
    elif access is Access.CLIENT_OR_ADMIN:
        need, create = f"a {access.value} token", "palyra token create --metrics"
    else:
        need, create = f"a {access.value} token", "palyra token create"
        if anthropic:
            how += " or the header x-api-key with the token"
    return ErrorEnvelope.of(
        FailureClass.AUTH_INVALID,
        f"{path} needs {need}; none was sent, or the one sent is unknown, expired or revoked. "
        f"Send {how} (create one with: {create})",
        code="invalid_api_key",
    )


class GuardMiddleware:
    """Refuses unauthenticated requests (401) and oversized bodies (413) in the caller's shape.

    A declared ``Content-Length`` over the limit is refused before the app runs; a chunked body
    is counted as it arrives and the read that crosses the limit fails with 413.
    """

    def __init__(self, app: ASGIApp, *, state: AppState, render: ErrorRenderer) -> None:
        self.app = app
        self.state = state
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self.refusal(scope, wanted_headers(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _counting(receive, self.state.config.daemon.max_body_bytes), send)

    async def refusal(self, scope: Scope, headers: Mapping[str, str]) -> Response | None:
        """The 401 or 413 for this request, or None when it may go on (its principal is then in
        ``scope["state"]``). ``headers`` are the ones :func:`wanted_headers` picks."""
        path: str = scope["path"]
        access = required_access(path)
        if access is not Access.OPEN:
            principal = None
            for token in presented_tokens(path, headers):
                found = await self.state.auth.authenticate(token)
                if found is not None and admits(access, found.kind):
                    principal = found
                    break
            if principal is None and access is Access.ADMIN and "cookie" in headers:
                principal, refusal = await self.session_principal(scope, headers)
                if refusal is not None:
                    return refusal
            if principal is None:
                anthropic = anthropic_caller(path, headers)
                response = self.render(path, unauthorized(path, access, anthropic), anthropic)
                response.headers["www-authenticate"] = 'Bearer realm="palyra"'
                return response
            scope.setdefault("state", {})["principal"] = principal
        limit = self.state.config.daemon.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            envelope = ErrorEnvelope.of(
                FailureClass.INVALID_REQUEST,
                too_large_message(limit),
                http_status=413,
                code="request_too_large",
            )
            return self.render(path, envelope, anthropic_caller(path, headers))
        return None

    async def session_principal(
        self, scope: Scope, headers: Mapping[str, str]
    ) -> tuple[Principal | None, Response | None]:
        """The admin behind a console session cookie, and the 403 for a state-changing call
        without the session's CSRF token (a cookie alone could be any page's forged request)."""
        value = cookie_value(headers["cookie"])
        if value is None:
            return None, None
        session = await self.state.auth.sessions.find(value)
        if session is None:
            return None, None
        principal = await self.state.auth.authenticate_digest(session.token_hash)
        if principal is None or not admits(Access.ADMIN, principal.kind):
            return None, None
        if scope["method"] not in SAFE_METHODS and not csrf_matches(
            value, headers.get(CSRF_HEADER)
        ):
            envelope = ErrorEnvelope.of(
                FailureClass.PERMISSION_DENIED,
                f"{scope['method']} {scope['path']} from a console session needs the "
                f"{CSRF_HEADER} header with the session's CSRF token (GET /console/v1/session "
                "gives it); none was sent, or it is not this session's. Nothing was changed",
                code="csrf_token_invalid",
                http_status=403,
            )
            return None, self.render(scope["path"], envelope, False)
        scope.setdefault("state", {})[SESSION_STATE] = value
        return principal, None


def wanted_headers(scope: Scope) -> dict[str, str]:
    """The first value of each header the guard (and the hot path) reads, in one pass over the
    raw headers (ASGI header names are lower case)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            key = _WANTED[name]
            if key not in found:
                found[key] = value.decode("latin-1")
    return found


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI passes HTTPException through even from form parsing; the app's
                # handler renders it in the caller's shape.
                raise HTTPException(413, detail=too_large_message(limit))
        return message

    return counted
