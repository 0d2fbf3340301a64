"""Which upstreams a console request may make the daemon contact, and the one refusal.

The console takes base URLs and OAuth issuers from a request, so nothing in a request may widen
the upstream guard (there is no ``allow_private`` in any body). A non-public address is reached
only where the operator already sends traffic: a ``[[model_provider.providers]]`` entry in
palyra.toml with ``allow_private_base_url = true`` whose base URL has the same scheme, host and
port. Any other non-public address gets one fixed answer, decided before anything is contacted
(for a host name: after resolving it, before connecting), which says nothing about the target:
no status, no error class, no redirect target. The console cannot be used to map a network.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from palyra.config.schema import PalyraConfig
from palyra.model import FailureClass, PalyraError
from palyra.net.addresses import parse_ip
from palyra.net.base_url import ADDRESS_REFUSED, base_url_problem

_DEFAULT_PORTS = {"http": 80, "https": 443}
REFUSED = (
    "{param}: the console may not contact this address. From the console only public addresses "
    "and loopback are reachable, and a private upstream that the operator allowed: a "
    "[[model_provider.providers]] entry in palyra.toml with allow_private_base_url = true and "
    "this URL's scheme, host and port. Nothing was stored"
)


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        host, port = (parts.hostname or ""), parts.port
    except ValueError:
        return None
    address = parse_ip(host)
    name = str(address) if address is not None else host.lower().removesuffix(".")
    return parts.scheme, name, port or _DEFAULT_PORTS.get(parts.scheme, 0)


def operator_allows_private(config: PalyraConfig, url: str) -> bool:
    """Whether a provider entry with ``allow_private_base_url`` has ``url``'s origin."""
    origin = _origin(url)
    if origin is None:
        return False
    return any(
        p.allow_private_base_url and p.base_url and _origin(p.base_url) == origin
        for p in config.model_provider.providers
    )


def refused(param: str) -> PalyraError:
    """The one answer to a refused address, whatever the address and whatever made it refused."""
    return PalyraError.of(
        FailureClass.INVALID_REQUEST,
        REFUSED.format(param=param),
        code=ADDRESS_REFUSED,
        param=param,
    )


def check_console_url(url: str, *, config: PalyraConfig, param: str) -> bool:
    """Refuse ``url`` as the caller's 400 (the base URL rule's message, or :func:`refused` for
    an address); return whether the check that follows may reach a private address."""
    allowed = operator_allows_private(config, url)
    problem = base_url_problem(url, allow_private=allowed, what=param)
    if problem is None:
        return allowed
    if problem.address:
        raise refused(param)
    raise PalyraError.of(FailureClass.INVALID_REQUEST, problem.message, param=param)


def as_console_error(exc: PalyraError, param: str) -> PalyraError:
    """An address the guard refused while connecting (a name that resolved to a non-public
    address) as :func:`refused`; any other error unchanged."""
    return refused(param) if exc.envelope.code == ADDRESS_REFUSED else exc
