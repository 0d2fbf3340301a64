"""Token-endpoint calls (code exchange, refresh) and the access-token check, as small I/O shells
around pure parsers. Errors carry a short category, never the provider's response text."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson

from palyra.model import FailureClass, PalyraError, remember_secret

TOKEN_TIMEOUT_S = 10.0
_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class OAuthTokenError(PalyraError):
    """A token-endpoint failure. ``category`` is safe to store and show: e.g. ``invalid_grant``,
    ``status_503``, ``transport``, ``invalid_response``, ``missing_refresh_token``."""

    def __init__(self, failure_class: FailureClass, category: str, message: str) -> None:
        super().__init__(PalyraError.of(failure_class, message, code=category).envelope)
        self.category = category


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. Secrets never print."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False, default=None)
    expires_in: int | None = None
    id_token: str | None = field(repr=False, default=None)
    scope: str | None = None

    def __post_init__(self) -> None:
        for value in (self.access_token, self.refresh_token, self.id_token):
            if value:
                remember_secret(value)


def _expires_in(value: Any) -> int | None:
    """Seconds as a JSON number or a numeric string (both are seen in the wild)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError("expires_in is not a number")


def parse_token_response(status: int, body: bytes, *, what: str) -> TokenSet:
    """Turn a token-endpoint answer into a :class:`TokenSet` or an :class:`OAuthTokenError`."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if status >= 400:
        code = data.get("error") if isinstance(data, dict) else None
        if isinstance(code, str) and _OAUTH_ERROR_CODE.match(code):
            category = code
        else:
            category = f"status_{status}"
        if category == "invalid_grant":
            raise OAuthTokenError(
                FailureClass.AUTH_INVALID,
                "invalid_grant",
                f"the OpenAI OAuth {what} was refused (invalid_grant): the grant is expired, "
                "revoked or already used; sign in again with: palyra auth openai login",
            )
        failure = FailureClass.UPSTREAM_UNAVAILABLE if status >= 500 else FailureClass.AUTH_INVALID
        raise OAuthTokenError(
            failure,
            category,
            f"the OpenAI OAuth {what} failed: the token endpoint answered HTTP {status} "
            f"({category}); try again, or sign in again with: palyra auth openai login",
        )
    access = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(access, str) or not access:
        raise OAuthTokenError(
            FailureClass.MALFORMED_RESPONSE,
            "invalid_response",
            f"the OpenAI OAuth {what} returned HTTP {status} without an access_token in a JSON "
            "object; check that the token endpoint is an OAuth 2.0 token endpoint",
        )
    refresh = data.get("refresh_token")
    id_token = data.get("id_token")
    scope = data.get("scope")
    try:
        expires_in = _expires_in(data.get("expires_in"))
    except ValueError:
        raise OAuthTokenError(
            FailureClass.MALFORMED_RESPONSE,
            "invalid_response",
            f"the OpenAI OAuth {what} returned an expires_in that is not a number",
        ) from None
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_in=expires_in,
        id_token=id_token if isinstance(id_token, str) and id_token else None,
        scope=scope if isinstance(scope, str) else None,
    )


async def _post_form(
    client: httpx2.AsyncClient, url: str, form: dict[str, str], *, what: str
) -> TokenSet:
    try:
        response = await client.post(
            url,
            data=form,
            headers={"Accept": "application/json"},
            follow_redirects=False,
            timeout=TOKEN_TIMEOUT_S,
        )
    except httpx2.TimeoutException:
        raise OAuthTokenError(
            FailureClass.TIMEOUT,
            "timeout",
            f"the OpenAI OAuth {what} timed out after {TOKEN_TIMEOUT_S:.0f} s; check the "
            "network and try again",
        ) from None
    except httpx2.HTTPError as exc:
        raise OAuthTokenError(
            FailureClass.CONNECTION,
            "transport",
            f"the OpenAI OAuth {what} could not reach the token endpoint "
            f"({exc.__class__.__name__}); check the network and try again",
        ) from None
    return parse_token_response(response.status_code, response.content, what=what)


async def exchange_authorization_code(
    client: httpx2.AsyncClient,
    *,
    token_endpoint: str,
    client_id: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> TokenSet:
    """Trade an authorization code for tokens; a grant without a refresh token is refused,
    because Palyra could not keep the profile alive past the first expiry."""
    tokens = await _post_form(
        client,
        token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": code_verifier,
        },
        what="code exchange",
    )
    if tokens.refresh_token is None:
        raise OAuthTokenError(
            FailureClass.AUTH_INVALID,
            "missing_refresh_token",
            "the OpenAI OAuth code exchange returned no refresh_token; request the "
            "offline_access scope (it is in the default scopes) and sign in again",
        )
    return tokens


async def refresh_access_token(
    client: httpx2.AsyncClient, *, token_endpoint: str, client_id: str, refresh_token: str
) -> TokenSet:
    """One refresh-token grant; a rotated refresh token, if any, is in the result."""
    return await _post_form(
        client,
        token_endpoint,
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
        what="token refresh",
    )


async def validate_openai_bearer_token(
    token: str, base_url: str, client: httpx2.AsyncClient
) -> None:
    """Prove the access token works with one cheap authenticated call (``GET /models``)."""
    url = base_url.rstrip("/") + "/models"
    try:
        response = await client.get(
            url,
            headers={"Authorization": f"Bearer {token}"},
            follow_redirects=False,
            timeout=TOKEN_TIMEOUT_S,
        )
    except httpx2.HTTPError as exc:
        raise PalyraError.of(
            FailureClass.CONNECTION,
            f"could not reach {url} to check the new OpenAI access token "
            f"({exc.__class__.__name__}); check the network and try again",
        ) from None
    status = response.status_code
    if status < 300:
        return
    if status in (401, 403):
        failure, hint = FailureClass.AUTH_INVALID, "OpenAI returned an access token it refuses"
    elif status == 429:
        failure, hint = FailureClass.RATE_LIMITED, "OpenAI is rate limiting the token check"
    else:
        failure, hint = FailureClass.UPSTREAM_UNAVAILABLE, "OpenAI could not check the token"
    raise PalyraError.of(
        failure,
        f"{hint} (GET {url} answered HTTP {status}); try signing in again later",
        upstream_status=status,
    )


@dataclass(frozen=True)
class IdentityClaims:
    """Who signed in, for display only: read from the id token without verifying it, so
    nothing here may ever decide access."""

    email: str | None = None
    account_id: str | None = None


def parse_id_token_claims(id_token: str | None) -> IdentityClaims:
    """``email`` and the ChatGPT account id from a JWT payload; anything malformed gives none."""
    if not id_token:
        return IdentityClaims()
    parts = id_token.split(".")
    if len(parts) != 3:
        return IdentityClaims()
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return IdentityClaims()
    if not isinstance(payload, dict):
        return IdentityClaims()
    email = payload.get("email")
    auth = payload.get("https://api.openai.com/auth")
    account = auth.get("chatgpt_account_id") if isinstance(auth, dict) else None
    return IdentityClaims(
        email=email[:256] if isinstance(email, str) and email else None,
        account_id=account[:128] if isinstance(account, str) and account else None,
    )
