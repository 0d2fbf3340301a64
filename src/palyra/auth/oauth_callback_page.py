"""The page the browser shows after the OAuth redirect.

Everything shown is HTML-escaped; the inline script only posts a small JSON payload to the
opener at this page's own origin (so no other site can read it), and that JSON is escaped so
no value can close the script element or break the line.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import orjson

OAUTH_COMPLETE_EVENT = "palyra-openai-oauth-complete"

_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_safe_json(payload: Mapping[str, object]) -> str:
    """JSON that is inert inside ``<script>``: no ``</script>``, ``<!--`` or line separators."""
    text = orjson.dumps(dict(payload)).decode("utf-8")
    return "".join(_SCRIPT_ESCAPES.get(ch, ch) for ch in text)


def render_callback_page(*, title: str, body: str, payload: Mapping[str, object]) -> str:
    """A complete HTML document; ``title`` and ``body`` are plain text, never markup."""
    safe_title = html.escape(title, quote=True)
    safe_body = html.escape(body, quote=True)
    data = script_safe_json({"type": OAUTH_COMPLETE_EVENT, **payload})
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{safe_title}</title></head>\n"
        f"<body><h1>{safe_title}</h1><p>{safe_body}</p>"
        "<p>You can close this window.</p>\n"
        "<script>(function () {"
        f"var payload = {data};"
        "if (window.opener) { window.opener.postMessage(payload, window.location.origin); }"
        "})();</script>\n"
        "</body></html>\n"
    )
