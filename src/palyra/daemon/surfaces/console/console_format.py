"""Pure helpers of the console API: error bodies, the OAuth redirect URI and callback headers.

Nothing here does I/O, so the rules that keep secrets and hostile input out of the console
(proxy refusal, the callback page's CSP, session derivation) are tested without a daemon.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi.responses import Response

from palyra.auth.oauth import OPENAI_OAUTH_CALLBACK_PATH
from palyra.model import FailureClass, PalyraError

JSON = "application/json"
SESSION_HEADER = "x-palyra-session"
SESSION_COOKIE = "palyra_oauth_session"
MAX_SESSION_CHARS = 256
FORWARDED_HEADERS = ("forwarded", "x-forwarded-")
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type=JSON, headers=dict(headers or {})
    )


def invalid(message: str, *, param: str | None = None) -> PalyraError:
    return PalyraError.of(FailureClass.INVALID_REQUEST, message, param=param)


def forwarded_header(names: Iterable[str]) -> str | None:
    """The first proxy header among ``names`` (``Forwarded`` or ``X-Forwarded-*``), if any."""
    for name in names:
        lowered = name.lower()
        if lowered == FORWARDED_HEADERS[0] or lowered.startswith(FORWARDED_HEADERS[1]):
            return lowered
    return None


def refuse_proxied(header: str) -> PalyraError:
    return invalid(
        f"OpenAI sign-in cannot start through a proxy (the request carries {header}): the "
        "callback goes to the daemon's own loopback address, which a browser on the proxy's "
        "side cannot reach, and a forwarded host cannot be trusted to build it. Open the console "
        "on the daemon's machine (http://127.0.0.1:<port>), or run there: palyra auth openai login"
    )


def loopback_redirect_uri(server: tuple[str, int] | None) -> str:
    """The callback URL on the address this request reached; only a loopback address will do."""
    if server is None:
        raise invalid("the daemon cannot tell its own address for the OpenAI sign-in callback")
    host, port = server
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host != "localhost" and (address is None or not address.is_loopback):
        raise invalid(
            f"OpenAI sign-in needs the console opened on a loopback address; this request "
            f"reached {host}:{port}. Open http://127.0.0.1:{port} on the daemon's machine, or "
            "run there: palyra auth openai login"
        )
    shown = f"[{host}]" if address is not None and address.version == 6 else host
    return f"http://{shown}:{port}{OPENAI_OAUTH_CALLBACK_PATH}"


def session_id(header: str | None, identity: str, secret: bytes) -> str:
    """The OAuth session: the caller's own ``x-palyra-session`` value, else one derived from
    the admin token's identity with a secret derived from the vault master key (so the cookie
    cannot be guessed, and every worker, replica and restart derives the same one)."""
    if header is not None and header.strip():
        value = header.strip()
        if len(value) > MAX_SESSION_CHARS or not value.isascii() or not value.isprintable():
            raise invalid(
                f"the {SESSION_HEADER} header must be printable ASCII of at most "
                f"{MAX_SESSION_CHARS} characters",
                param=SESSION_HEADER,
            )
        if ";" in value or "," in value or " " in value or '"' in value:
            raise invalid(
                f"the {SESSION_HEADER} header may not contain spaces, quotes, ';' or ','",
                param=SESSION_HEADER,
            )
        return value
    mac = hmac.new(secret, identity.encode(), hashlib.sha256).digest()
    return "adm_" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def session_cookie(value: str, max_age_s: int) -> str:
    """Sent only to the callback path, never readable by scripts, kept on top-level redirects."""
    return (
        f"{SESSION_COOKIE}={value}; Path={OPENAI_OAUTH_CALLBACK_PATH}; Max-Age={max_age_s}; "
        "HttpOnly; SameSite=Lax"
    )


def callback_headers(html: str) -> dict[str, str]:
    """Headers of the callback page: only its own inline script may run, it is never framed,
    cached or sent as a referrer."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _SCRIPT.findall(html)
    )
    script_src = hashes or "'none'"
    return {
        "content-security-policy": (
            f"default-src 'none'; script-src {script_src}; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        ),
        "x-frame-options": "DENY",
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
    }


def group_health(rows: Iterable[Mapping[str, object]]) -> dict[str, list[Mapping[str, object]]]:
    """Health rows split by scope kind: ``provider:``, ``target:`` (models), ``credential:``."""
    groups: dict[str, list[Mapping[str, object]]] = {
        "providers": [],
        "models": [],
        "credentials": [],
    }
    names = {"provider": "providers", "target": "models", "credential": "credentials"}
    for row in rows:
        kind = str(row.get("scope", "")).partition(":")[0]
        if kind in names:
            groups[names[kind]].append(row)
    return groups
