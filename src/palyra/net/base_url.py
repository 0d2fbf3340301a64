"""The one base URL rule: what an upstream URL may look like and where it may point.

``palyra config check``, provider start-up, ``palyra auth ... api-key``, OAuth endpoints and the
console all ask :func:`base_url_problem`, so whatever one refuses the others refuse, with the same
words. The rule:

- absolute ``http``/``https`` with a host, a valid port, no ``#`` fragment;
- no ``user:pass@`` (credentials belong in the vault: ``api_key`` or ``auth_profile_id``);
- an IPv4 address only in canonical dotted-decimal form;
- an IP literal that is not public (private, CGNAT, link-local, multicast, NAT64/6to4 forms of
  those, ...; see :mod:`palyra.net.addresses`) only with ``allow_private``;
- plain ``http`` only to loopback, or with ``allow_private`` to a non-public IP literal: a host
  name or a public address over plain http is refused even with ``allow_private``, because
  nothing would then stop the request from crossing the internet in clear.

Names are checked again when connecting (after DNS), by the upstream guard. Messages never
contain what stood before an ``@``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from palyra.net.addresses import blocked_reason, is_loopback_host, is_noncanonical_ipv4, parse_ip

SCHEMES = ("https", "http")
ADDRESS_REFUSED = "upstream_address_refused"
"""The error code of a refusal for where an upstream points (not for how its URL is written)."""
OPT_IN_HINT = (
    "if this upstream really lives on your network, set allow_private_base_url = true on the "
    "provider in palyra.toml"
)
_EXAMPLE = "write it like https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class UrlProblem:
    """Why a URL is refused; ``address`` is set when it is refused for where it points (a
    non-public address), not for how it is written."""

    message: str
    address: bool = False


def shown_url(url: str) -> str:
    """``url`` as an error may show it: without credentials, query or fragment, at most 200
    characters. Works on text no URL parser accepts."""
    text = url.strip().split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = text.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        text = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    elif "@" in text:
        text = text.rpartition("@")[2]
    return text if len(text) <= 200 else text[:199] + "…"


def _split(url: str) -> tuple[SplitResult, str] | str:
    """The parts and host of ``url``, or why it cannot be parsed."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        return str(exc) or "it cannot be parsed"
    return parts, host


def base_url_problem(
    url: str, *, allow_private: bool, what: str = "base URL", private_hint: str = OPT_IN_HINT
) -> UrlProblem | None:
    """Why ``url`` is not an acceptable upstream URL, or ``None``; ``what`` names it in messages,
    ``private_hint`` says how a non-public address could be allowed."""
    shown = shown_url(url)
    split = _split(url.strip())
    if isinstance(split, str):
        reason = "an invalid port" if "port" in split.lower() else f"a syntax error ({split})"
        return UrlProblem(f"{what} {shown!r} is not a valid URL: it has {reason}; {_EXAMPLE}")
    parts, host = split
    if parts.scheme not in SCHEMES or not host:
        if parts.scheme in SCHEMES:
            why = "no host"
        elif parts.scheme and parts.netloc:
            why = f"it uses {parts.scheme}://"
        else:
            why = "no scheme"
        return UrlProblem(f"{what} {shown!r} is not an absolute http(s) URL ({why}); {_EXAMPLE}")
    if "@" in parts.netloc:
        return UrlProblem(
            f"{what} {shown!r} contains credentials before '@'; remove them: credentials belong "
            "in the vault, given with api_key or auth_profile_id"
        )
    if parts.fragment:
        return UrlProblem(f"{what} {shown!r} has a '#' fragment; remove it")
    if is_noncanonical_ipv4(host):
        return UrlProblem(
            f"{what} {shown!r} has the host {host!r}, which URL parsers and resolvers read as an "
            "IPv4 address but which is not written as four decimal numbers from 0 to 255 "
            "(octal, hex or short forms mean different addresses to different parsers); write "
            "the address in dotted decimal, e.g. 10.0.0.5, or use a host name"
        )
    address = parse_ip(host)
    blocked = blocked_reason(address) if address is not None else None
    if blocked is not None and not allow_private:
        return UrlProblem(f"{what} {shown!r} points at {address}, {blocked}; {private_hint}", True)
    if parts.scheme == "http" and not is_loopback_host(host) and blocked is None:
        return UrlProblem(
            f"{what} {shown!r} uses plain http; use https (http is only allowed to loopback "
            "hosts, or to a private IP literal with allow_private_base_url = true)"
        )
    return None
