"""Daemon access tokens in the store: only a SHA-256 hash of each token is ever written.

Tokens are 32 random bytes, so a plain SHA-256 is enough: a slow password hash protects guessable
secrets from offline brute force, and 256 bits of randomness cannot be brute-forced either way.
A fast hash also keeps the authentication path cheap.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.config.schema import LimitSpec
from palyra.model import FailureClass, PalyraError
from palyra.store import Migration, MigrationSet, Store

TOKEN_BYTES = 32
MAX_NAME_CHARS = 128
MAX_AGENT_ID_CHARS = 128
AGENT_ID_RE = re.compile(r"^[a-z0-9._-]{1,128}$")  # as in agents.toml
# A token that never expires is made by giving no lifetime; a finite one is at most a century,
# so its expiry always fits the store's 64-bit millisecond column.
MAX_LIFETIME_DAYS = 36_500


class TokenKind(StrEnum):
    """Client tokens open ``/v1``; admin tokens open ``/console/v1``; metrics tokens open only
    ``/metrics`` (which the other two open too). None opens another's routes."""

    CLIENT = "client"
    ADMIN = "admin"
    METRICS = "metrics"


TOKEN_PREFIXES = {TokenKind.CLIENT: "plk_", TokenKind.ADMIN: "pla_", TokenKind.METRICS: "plm_"}

metadata = sa.MetaData()

daemon_tokens = sa.Table(
    "daemon_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(MAX_NAME_CHARS), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
    sa.Column("last_used_at_ms", sa.BigInteger, nullable=True),
    sa.Column("revoked_at_ms", sa.BigInteger, nullable=True),
    # Added by step 2: the agent a client token is bound to (its requests use that agent's
    # auth profiles).
    sa.Column("agent_id", sa.String(MAX_AGENT_ID_CHARS), nullable=True),
    sa.Column("limits_json", sa.Text, nullable=True),
)


def _create_v1(conn: Connection) -> None:
    # Step 1 exactly as it shipped (the columns later steps add come from those steps).
    v1 = sa.Table(
        "daemon_tokens",
        sa.MetaData(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(MAX_NAME_CHARS), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
        sa.Column("last_used_at_ms", sa.BigInteger, nullable=True),
        sa.Column("revoked_at_ms", sa.BigInteger, nullable=True),
    )
    v1.create(conn)


def _add_agent_v2(conn: Connection) -> None:
    conn.execute(
        sa.text(f"ALTER TABLE daemon_tokens ADD COLUMN agent_id VARCHAR({MAX_AGENT_ID_CHARS})")
    )


def _add_limits_v3(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE daemon_tokens ADD COLUMN limits_json TEXT"))


TOKENS_SCHEMA = MigrationSet(
    "daemon_tokens",
    [
        Migration(1, "create daemon_tokens", _create_v1),
        Migration(2, "bind client tokens to an agent", _add_agent_v2),
        Migration(3, "limits and budgets per client token", _add_limits_v3),
    ],
)


def limits_problem(kind: TokenKind, limits: LimitSpec | None) -> PalyraError | None:
    """Why a token of ``kind`` cannot carry ``limits`` (only client tokens call models)."""
    if limits is not None and not limits.is_empty() and kind is not TokenKind.CLIENT:
        return PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f"only a client token calls models, so only it takes limits; this is a {kind.value} "
            "token: drop --models, --rpm, --tpm, --concurrency and --budget-*",
            param="limits",
        )
    return None


def _limits_json(limits: LimitSpec | None) -> str | None:
    if limits is None or limits.is_empty():
        return None
    return limits.model_dump_json(exclude_defaults=True)


def generate_token(kind: TokenKind, randbytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """``plk_`` or ``pla_`` plus 32 random bytes in unpadded base64url."""
    body = base64.urlsafe_b64encode(randbytes(TOKEN_BYTES)).rstrip(b"=").decode()
    return TOKEN_PREFIXES[kind] + body


def hash_token(token: str) -> str:
    """The hex SHA-256 the store keeps instead of the token (see the module docstring)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One token's metadata; ``token_hash`` stays out of reprs and public output."""

    id: str
    kind: TokenKind
    name: str
    created_at_ms: int
    expires_at_ms: int | None
    last_used_at_ms: int | None
    revoked_at_ms: int | None
    token_hash: str = field(repr=False)
    agent_id: str | None = None
    limits: LimitSpec | None = None  # None: nothing limited

    def status(self, now_ms: int) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at_ms is not None:
            return "revoked"
        if self.expires_at_ms is not None and now_ms >= self.expires_at_ms:
            return "expired"
        return "active"

    def public_dict(self, now_ms: int) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "name": self.name,
            "status": self.status(now_ms),
            "created": _iso(self.created_at_ms),
            "expires": _iso(self.expires_at_ms),
            "last_used": _iso(self.last_used_at_ms),
            "revoked": _iso(self.revoked_at_ms),
            "agent": self.agent_id,
            "limits": None
            if self.limits is None
            else self.limits.model_dump(mode="json", exclude_defaults=True),
        }


def _record(row: sa.Row[tuple[object, ...]]) -> TokenRecord:
    m = row._mapping
    return TokenRecord(
        id=m["id"],
        kind=TokenKind(m["kind"]),
        name=m["name"],
        created_at_ms=m["created_at_ms"],
        expires_at_ms=m["expires_at_ms"],
        last_used_at_ms=m["last_used_at_ms"],
        revoked_at_ms=m["revoked_at_ms"],
        token_hash=m["token_hash"],
        agent_id=m["agent_id"],
        limits=None
        if m["limits_json"] is None
        else LimitSpec.model_validate_json(m["limits_json"]),
    )


class TokenStore:
    """Create, list, revoke and look up tokens; the caller runs ``store.migrate(TOKENS_SCHEMA)``."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        randbytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.store = store
        self._clock = clock
        self._randbytes = randbytes

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def create(
        self,
        kind: TokenKind,
        *,
        name: str = "",
        expires_in_s: float | None = None,
        agent_id: str | None = None,
        limits: LimitSpec | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token and its record; the token itself is returned once and never stored.
        ``agent_id`` binds a client token to an agent."""
        if agent_id is not None:
            if kind is not TokenKind.CLIENT:
                raise PalyraError.of(
                    FailureClass.INVALID_REQUEST,
                    "only a client token can be bound to an agent; drop --agent or --admin",
                    param="agent",
                )
            if not AGENT_ID_RE.match(agent_id):
                raise PalyraError.of(
                    FailureClass.INVALID_REQUEST,
                    f"agent id {agent_id!r} is not valid (lower-case letters, digits, . _ -); "
                    "see: palyra agents list",
                    param="agent",
                )
        refused = limits_problem(kind, limits)
        if refused is not None:
            raise refused
        name = name.strip() or f"{kind.value} token"
        if len(name) > MAX_NAME_CHARS:
            raise PalyraError.of(
                FailureClass.INVALID_REQUEST,
                f"token name is {len(name)} characters; the limit is {MAX_NAME_CHARS}",
                param="name",
            )
        unprintable = next((c for c in name if not c.isprintable()), None)
        if unprintable is not None:
            # A name is printed by `palyra token list`: no NUL, escapes or bidi controls.
            raise PalyraError.of(
                FailureClass.INVALID_REQUEST,
                f"token name holds the control character U+{ord(unprintable):04X} at position "
                f"{name.index(unprintable) + 1}; use printable characters only",
                param="name",
            )
        if expires_in_s is not None and not 0 < expires_in_s <= MAX_LIFETIME_DAYS * 86_400:
            raise PalyraError.of(
                FailureClass.INVALID_REQUEST,
                f"a token's lifetime must be positive and at most {MAX_LIFETIME_DAYS} days; give "
                "--expires-days within that, or none for a token that does not expire",
                param="expires_days",
            )
        token = generate_token(kind, self._randbytes)
        now = self.now_ms()
        record = TokenRecord(
            id="tok_" + self._randbytes(6).hex(),
            kind=kind,
            name=name,
            created_at_ms=now,
            expires_at_ms=None if expires_in_s is None else now + int(expires_in_s * 1000),
            last_used_at_ms=None,
            revoked_at_ms=None,
            token_hash=hash_token(token),
            agent_id=agent_id,
            limits=None if limits is None or limits.is_empty() else limits,
        )
        async with self.store.begin() as conn:
            await conn.execute(
                sa.insert(daemon_tokens).values(
                    id=record.id,
                    kind=record.kind.value,
                    name=record.name,
                    token_hash=record.token_hash,
                    created_at_ms=record.created_at_ms,
                    expires_at_ms=record.expires_at_ms,
                    agent_id=record.agent_id,
                    limits_json=_limits_json(record.limits),
                )
            )
        return token, record

    async def update_limits(self, token_id: str, limits: LimitSpec) -> TokenRecord | None:
        """Replace a token's limits (an empty spec lifts them all); None when there is no such
        token. A running daemon applies them within its token cache TTL (30 s)."""
        async with self.store.begin() as conn:
            row = (
                await conn.execute(sa.select(daemon_tokens).where(daemon_tokens.c.id == token_id))
            ).first()
            if row is None:
                return None
            refused = limits_problem(TokenKind(row._mapping["kind"]), limits)
            if refused is not None:
                raise refused
            await conn.execute(
                sa.update(daemon_tokens)
                .where(daemon_tokens.c.id == token_id)
                .values(limits_json=_limits_json(limits))
            )
            row = (
                await conn.execute(sa.select(daemon_tokens).where(daemon_tokens.c.id == token_id))
            ).first()
        return _record(row) if row else None

    async def list(self) -> list[TokenRecord]:
        async with self.store.connect() as conn:
            rows = await conn.execute(
                sa.select(daemon_tokens).order_by(daemon_tokens.c.created_at_ms, daemon_tokens.c.id)
            )
            return [_record(r) for r in rows]

    async def revoke(self, token_id: str) -> TokenRecord | None:
        """Mark a token revoked (keeping the first revocation time); None when there is none."""
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(daemon_tokens)
                .where(daemon_tokens.c.id == token_id, daemon_tokens.c.revoked_at_ms.is_(None))
                .values(revoked_at_ms=self.now_ms())
            )
            row = (
                await conn.execute(sa.select(daemon_tokens).where(daemon_tokens.c.id == token_id))
            ).first()
        return _record(row) if row else None

    async def find(self, token_hash: str) -> TokenRecord | None:
        """The record whose hash is ``token_hash``, whatever its status."""
        async with self.store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(daemon_tokens).where(daemon_tokens.c.token_hash == token_hash)
                )
            ).first()
        return _record(row) if row else None

    async def touch(self, token_id: str) -> None:
        """Record a use; callers do this once per cache period, not once per request."""
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(daemon_tokens)
                .where(daemon_tokens.c.id == token_id)
                .values(last_used_at_ms=self.now_ms())
            )

    async def has_active(self, kind: TokenKind) -> bool:
        now = self.now_ms()
        query = (
            sa.select(daemon_tokens.c.id)
            .where(
                daemon_tokens.c.kind == kind.value,
                daemon_tokens.c.revoked_at_ms.is_(None),
                sa.or_(
                    daemon_tokens.c.expires_at_ms.is_(None), daemon_tokens.c.expires_at_ms > now
                ),
            )
            .limit(1)
        )
        async with self.store.connect() as conn:
            return (await conn.execute(query)).first() is not None
