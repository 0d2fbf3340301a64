"""Web console sessions: a random cookie value for the browser, only its hash on the server.

Signing in with an admin token starts a session; the browser holds the session's value in an
HttpOnly cookie and never sees the admin token again. The server keeps the SHA-256 of the
value (which cannot be turned back into it) with the SHA-256 of the admin token it stands for,
so revoking that token ends its sessions too. The CSRF token is derived from the cookie value by
a one-way hash: a page that holds the cookie can be told it, nobody can compute it without the
cookie, and it needs no storage of its own. Sessions live in the store (every worker and replica
sees them); a daemon with fixed tokens only and no store keeps them in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.store import Migration, MigrationSet, Store

SESSION_COOKIE = "palyra_console"
CSRF_HEADER = "x-palyra-csrf"
COOKIE_PATH = "/console"
SESSION_TTL_S = 8 * 3600
SESSION_PREFIX = "pcs_"
MAX_SESSIONS = 10_000  # kept in memory at most: the oldest go first past it
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

metadata = sa.MetaData()

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the cookie value
    sa.Column("token_hash", sa.String(64), nullable=False),  # SHA-256 of the admin token
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
)


def _create_v1(conn: Connection) -> None:
    v1 = sa.Table(
        "console_sessions",
        sa.MetaData(),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False, index=True),
    )
    v1.create(conn)


SESSIONS_SCHEMA = MigrationSet(
    "console_sessions", [Migration(1, "create console_sessions", _create_v1)]
)


def new_session_value(randbytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    return SESSION_PREFIX + base64.urlsafe_b64encode(randbytes(32)).rstrip(b"=").decode()


def session_key(value: str) -> str:
    """What the server stores for a cookie value."""
    return hashlib.sha256(b"palyra console session v1\0" + value.encode()).hexdigest()


def csrf_token(value: str) -> str:
    """The CSRF token of the session whose cookie value is ``value`` (one-way)."""
    digest = hashlib.sha256(b"palyra console csrf v1\0" + value.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(value: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(value), presented.strip())


def cookie_header(value: str, max_age_s: int, *, secure: bool) -> str:
    """The ``Set-Cookie`` value: scripts cannot read it, other sites never make the browser
    send it, it goes only to ``/console`` paths, and over TLS only when the daemon serves TLS."""
    flags = f"Path={COOKIE_PATH}; Max-Age={max_age_s}; HttpOnly; SameSite=Strict"
    return f"{SESSION_COOKIE}={value}; {flags}" + ("; Secure" if secure else "")


def cookie_value(cookie_header_value: str) -> str | None:
    """The console session's value from a request's ``Cookie`` header, if it carries one."""
    for part in cookie_header_value.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == SESSION_COOKIE and value.startswith(SESSION_PREFIX):
            return value
    return None


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    key: str = field(repr=False)
    token_hash: str = field(repr=False)
    created_at_ms: int
    expires_at_ms: int


class SessionStore(Protocol):
    async def add(self, session: ConsoleSession) -> None: ...
    async def get(self, key: str, now_ms: int) -> ConsoleSession | None: ...
    async def remove(self, key: str) -> bool: ...


class MemorySessions:
    """Sessions of a daemon that has no store (fixed tokens only): one process, lost on exit."""

    def __init__(self) -> None:
        self._sessions: dict[str, ConsoleSession] = {}

    async def add(self, session: ConsoleSession) -> None:
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.created_at_ms)
            del self._sessions[oldest.key]
        self._sessions[session.key] = session

    async def get(self, key: str, now_ms: int) -> ConsoleSession | None:
        found = self._sessions.get(key)
        if found is not None and now_ms >= found.expires_at_ms:
            del self._sessions[key]
            return None
        return found

    async def remove(self, key: str) -> bool:
        return self._sessions.pop(key, None) is not None


class StoredSessions:
    """Sessions in the store's ``console_sessions`` table; expired rows go at each sign-in."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, session: ConsoleSession) -> None:
        table = console_sessions
        async with self.store.begin() as conn:
            await conn.execute(
                sa.delete(table).where(table.c.expires_at_ms <= session.created_at_ms)
            )
            await conn.execute(
                sa.insert(table).values(
                    id=session.key,
                    token_hash=session.token_hash,
                    created_at_ms=session.created_at_ms,
                    expires_at_ms=session.expires_at_ms,
                )
            )

    async def get(self, key: str, now_ms: int) -> ConsoleSession | None:
        table = console_sessions
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(table).where(table.c.id == key))).first()
        if row is None:
            return None
        m = row._mapping
        if now_ms >= m["expires_at_ms"]:
            await self.remove(key)
            return None
        return ConsoleSession(key, m["token_hash"], m["created_at_ms"], m["expires_at_ms"])

    async def remove(self, key: str) -> bool:
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.delete(console_sessions).where(console_sessions.c.id == key)
            )
        return bool(result.rowcount)


class ConsoleSessions:
    """Starts, finds and ends console sessions over a :class:`SessionStore`."""

    def __init__(
        self,
        backend: SessionStore,
        *,
        clock: Callable[[], float] = time.time,
        ttl_s: int = SESSION_TTL_S,
        randbytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.backend = backend
        self.ttl_s = ttl_s
        self._clock = clock
        self._randbytes = randbytes

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def start(self, token_hash: str) -> tuple[str, ConsoleSession]:
        """A new session for the admin token whose hash is ``token_hash``: (cookie value, row)."""
        value = new_session_value(self._randbytes)
        now = self.now_ms()
        session = ConsoleSession(session_key(value), token_hash, now, now + self.ttl_s * 1000)
        await self.backend.add(session)
        return value, session

    async def find(self, value: str) -> ConsoleSession | None:
        return await self.backend.get(session_key(value), self.now_ms())

    async def end(self, value: str) -> bool:
        return await self.backend.remove(session_key(value))
