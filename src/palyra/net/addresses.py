"""The one table of address classes: what is loopback, what is not a public upstream, and why.

``palyra config check``, the base URL check when a provider is built and the guard that runs
before every connection all classify an address here, so they cannot disagree. Hosts are read
the way URL parsers and resolvers read them: a host that ends in a number is an IPv4 address,
and only its canonical dotted-decimal form is accepted (``0251.0376.0251.0376`` or
``0x7f.1`` mean different things to different parsers; Palyra refuses to guess).
"""

from __future__ import annotations

import functools
import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TEREDO = ipaddress.IPv6Network("2001::/32")
# A label that a WHATWG or inet_aton parser reads as a number: decimal, octal or 0x-hex.
_NUMERIC_LABEL = re.compile(r"^(0[xX][0-9A-Fa-f]*|[0-9]+)$")
_CANONICAL_IPV4 = re.compile(r"^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_loopback(address: IPAddress) -> bool:
    """127.0.0.0/8 and ``::1``, also written as an IPv4-mapped IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped
        return address.is_loopback or (inner is not None and inner.is_loopback)
    return address.is_loopback


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public upstream (``None`` if it is public or loopback).

    IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are judged by that address; a
    tunnelled loopback address is refused, since only plain loopback is trusted.
    """
    if is_loopback(address):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address in _TEREDO:
            return "a Teredo tunnel address"
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = blocked_reason(inner)
            if reason is None and not inner.is_global:
                reason = "a tunnelled loopback address"
            return reason
        if address.is_site_local:
            return "a site-local address"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "a CGNAT address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


@functools.lru_cache(maxsize=1024)
def parse_ip(host: str) -> IPAddress | None:
    """The address of an IP-literal ``host`` (IPv6 with or without brackets), ``None`` for a
    name. Cached: the same few upstream hosts are parsed on every request."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_noncanonical_ipv4(host: str) -> bool:
    """Whether ``host`` is read as an IPv4 address by URL parsers and resolvers (its last label
    is a number) without being written as four plain decimal numbers."""
    name = host.removesuffix(".")
    if ":" in name or not _NUMERIC_LABEL.match(name.rpartition(".")[2]):
        return False
    return not (_CANONICAL_IPV4.match(name) and parse_ip(name) is not None)


def is_loopback_host(host: str) -> bool:
    """``localhost``, a name under ``.localhost`` or a loopback literal."""
    name = host.lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = parse_ip(name)
    return address is not None and is_loopback(address)
