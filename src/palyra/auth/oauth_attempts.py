"""OAuth attempts in the store, so any replica can finish one and a restart loses none.

An attempt moves ``pending -> exchanging -> succeeded | failed`` (or ``pending -> failed``).
Every move is a conditional UPDATE on the current status, so a replayed or duplicate callback
cannot exchange the same code twice. ``state`` and the session id are stored only as SHA-256
digests; the PKCE verifier is kept only while pending, sealed with a key derived from ``state``
(see :func:`palyra.auth.pkce.seal_verifier`), and wiped when the exchange claims it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.store import Migration, MigrationSet, Store

metadata = sa.MetaData()

oauth_attempts = sa.Table(
    "oauth_attempts",
    metadata,
    sa.Column("attempt_id", sa.String(64), primary_key=True),
    sa.Column("state_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("session_hash", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("client_id", sa.String(256), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("token_endpoint", sa.Text, nullable=False),
    sa.Column("validation_base_url", sa.Text, nullable=True),
    sa.Column("profile_id", sa.String(128), nullable=True),
    sa.Column("code_verifier", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("result_profile_id", sa.String(128), nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    sa.Column("completed_at_ms", sa.BigInteger, nullable=True),
)


def _create_v1(conn: Connection) -> None:
    oauth_attempts.create(conn)


OAUTH_SCHEMA = MigrationSet("oauth", [Migration(1, "create oauth_attempts", _create_v1)])

# Finished or expired attempts are kept this long for polling, then removed.
RETAIN_MS = 24 * 3600 * 1000


class AttemptStatus(StrEnum):
    PENDING = "pending"
    EXCHANGING = "exchanging"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class OAuthAttempt:
    """One attempt as stored; ``code_verifier`` is empty once the exchange has claimed it."""

    attempt_id: str
    state_hash: str = field(repr=False)
    session_hash: str = field(repr=False)
    provider: str
    status: AttemptStatus
    client_id: str
    redirect_uri: str
    scopes: str
    token_endpoint: str
    validation_base_url: str | None
    profile_id: str | None
    code_verifier: str = field(repr=False)
    message: str
    result_profile_id: str | None
    created_at_ms: int
    expires_at_ms: int
    completed_at_ms: int | None

    @classmethod
    def from_row(cls, row: Any) -> OAuthAttempt:
        values = dict(row._mapping)
        values["status"] = AttemptStatus(values["status"])
        return cls(**values)

    def row(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in oauth_attempts.columns}


async def insert_attempt(store: Store, attempt: OAuthAttempt, *, purge_before_ms: int) -> None:
    """Store a new attempt, removing attempts that expired long ago in the same transaction."""
    async with store.begin() as conn:
        await conn.execute(
            sa.delete(oauth_attempts).where(oauth_attempts.c.expires_at_ms < purge_before_ms)
        )
        await conn.execute(sa.insert(oauth_attempts).values(**attempt.row()))


async def get_attempt(store: Store, attempt_id: str) -> OAuthAttempt | None:
    async with store.connect() as conn:
        row = (
            await conn.execute(
                sa.select(oauth_attempts).where(oauth_attempts.c.attempt_id == attempt_id)
            )
        ).first()
    return OAuthAttempt.from_row(row) if row else None


async def find_by_state_hash(store: Store, state_hash: str) -> OAuthAttempt | None:
    async with store.connect() as conn:
        row = (
            await conn.execute(
                sa.select(oauth_attempts).where(oauth_attempts.c.state_hash == state_hash)
            )
        ).first()
    return OAuthAttempt.from_row(row) if row else None


async def claim_for_exchange(store: Store, attempt_id: str, now_ms: int) -> OAuthAttempt | None:
    """Move a live pending attempt to ``exchanging`` and hand back its verifier, exactly once.

    ``None`` when another callback already claimed it, it finished, or it expired.
    """
    async with store.begin() as conn:
        row = (
            await conn.execute(
                sa.select(oauth_attempts)
                .where(oauth_attempts.c.attempt_id == attempt_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            return None
        result = await conn.execute(
            sa.update(oauth_attempts)
            .where(
                oauth_attempts.c.attempt_id == attempt_id,
                oauth_attempts.c.status == AttemptStatus.PENDING.value,
                oauth_attempts.c.expires_at_ms > now_ms,
            )
            .values(
                status=AttemptStatus.EXCHANGING.value,
                code_verifier="",
                message="Exchanging the authorization code.",
            )
        )
        if result.rowcount != 1:
            return None
    return OAuthAttempt.from_row(row)


async def finish_attempt(
    store: Store,
    attempt_id: str,
    *,
    status: AttemptStatus,
    message: str,
    now_ms: int,
    profile_id: str | None = None,
) -> bool:
    """Record the outcome; only an unfinished attempt can finish (``False`` otherwise)."""
    async with store.begin() as conn:
        result = await conn.execute(
            sa.update(oauth_attempts)
            .where(
                oauth_attempts.c.attempt_id == attempt_id,
                oauth_attempts.c.status.in_(
                    [AttemptStatus.PENDING.value, AttemptStatus.EXCHANGING.value]
                ),
            )
            .values(
                status=status.value,
                message=message,
                code_verifier="",
                result_profile_id=profile_id,
                completed_at_ms=now_ms,
            )
        )
    return bool(result.rowcount == 1)
