"""Stored Responses (``POST /v1/responses`` with ``store`` true): one row per response.

A row keeps the turn's own input (neutral messages, as JSON, and since schema step 2 the input
items as the client sent them, for ``GET .../input_items``), the Response object as sent, the id
of the response it continued, and who made it. ``previous_response_id`` rebuilds a
conversation by walking those links back to the first turn. Rows are owned by the client token
that created them: another token reads nothing, not even whether an id exists. Expired rows
(``[responses] retention_days``) are invisible at once and deleted on later writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.store.engine import Store
from palyra.store.migrations import Migration, MigrationSet

MAX_CHAIN = 1000
PURGE_EVERY_MS = 60_000
_DAY_MS = 86_400_000

metadata = sa.MetaData()

stored_responses = sa.Table(
    "stored_responses",
    metadata,
    sa.Column("id", sa.String(96), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("previous_id", sa.String(96), nullable=True),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("input_json", sa.Text, nullable=False),
    sa.Column("input_items_json", sa.Text, nullable=True),
    sa.Column("response_json", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_stored_responses_expires", "expires_at_ms"),
)


def _create_v1(conn: Connection) -> None:
    # Step 1's table as it was (a migration never changes; step 2 adds a column).
    sa.Table(
        "stored_responses",
        sa.MetaData(),
        sa.Column("id", sa.String(96), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("previous_id", sa.String(96), nullable=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("input_json", sa.Text, nullable=False),
        sa.Column("response_json", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
        sa.Index("ix_stored_responses_expires", "expires_at_ms"),
    ).create(conn)


def _add_input_items_v2(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE stored_responses ADD COLUMN input_items_json TEXT"))


RESPONSES_SCHEMA = MigrationSet(
    "stored_responses",
    [
        Migration(1, "create stored_responses", _create_v1),
        Migration(2, "keep the input items as sent", _add_input_items_v2),
    ],
)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored turn: its input messages (JSON-ready dicts) and its Response object."""

    id: str
    owner: str
    previous_id: str | None
    model: str
    input: list[dict[str, Any]]
    response: dict[str, Any]
    created_at_ms: int
    input_items: list[dict[str, Any]] | None = None
    """The input items as sent (None for rows stored before schema step 2)."""


class ChainBroken(LookupError):
    """A link of a ``previous_response_id`` chain is gone (deleted or expired)."""

    def __init__(self, missing: str) -> None:
        super().__init__(missing)
        self.missing = missing


class ResponseStore:
    """Save, fetch, delete and chain stored responses; the caller migrates ``RESPONSES_SCHEMA``.

    ``retention_days`` of 0 keeps responses until deleted.
    """

    def __init__(
        self, store: Store, *, retention_days: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.retention_days = retention_days
        self._clock = clock
        self._purged_at: int | None = None

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _live(self, now: int) -> sa.ColumnElement[bool]:
        column = stored_responses.c.expires_at_ms
        return sa.or_(column.is_(None), column > now)

    async def save(
        self,
        *,
        id: str,
        owner: str,
        previous_id: str | None,
        model: str,
        input: list[dict[str, Any]],
        response: dict[str, Any],
        input_items: list[dict[str, Any]] | None = None,
    ) -> None:
        """Store one response, and (at most once a minute) delete the rows whose retention has
        run out; expired rows are invisible to reads meanwhile."""
        now = self.now_ms()
        expires = None if self.retention_days <= 0 else now + int(self.retention_days * _DAY_MS)
        purge = self._purged_at is None or now - self._purged_at >= PURGE_EVERY_MS
        async with self.store.begin() as conn:
            if purge:
                await conn.execute(
                    sa.delete(stored_responses).where(stored_responses.c.expires_at_ms <= now)
                )
                self._purged_at = now
            await conn.execute(
                sa.insert(stored_responses).values(
                    id=id,
                    owner=owner,
                    previous_id=previous_id,
                    model=model,
                    input_json=orjson.dumps(input).decode(),
                    input_items_json=None
                    if input_items is None
                    else orjson.dumps(input_items).decode(),
                    response_json=orjson.dumps(response).decode(),
                    created_at_ms=now,
                    expires_at_ms=expires,
                )
            )

    async def get(self, id: str, owner: str) -> StoredResponse | None:
        """The owner's live response ``id``, or None (missing, expired, or someone else's)."""
        query = sa.select(stored_responses).where(
            stored_responses.c.id == id,
            stored_responses.c.owner == owner,
            self._live(self.now_ms()),
        )
        async with self.store.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(row)

    async def delete(self, id: str, owner: str) -> bool:
        """Delete the owner's response ``id``; False when there was none to delete."""
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.delete(stored_responses).where(
                    stored_responses.c.id == id,
                    stored_responses.c.owner == owner,
                    self._live(self.now_ms()),
                )
            )
        return bool(result.rowcount)

    async def chain(self, id: str, owner: str, *, partial: bool = False) -> list[StoredResponse]:
        """The turns ending at ``id``, oldest first; ``ChainBroken`` names the first link that
        is gone (``id`` itself when it is). ``partial`` stops at a gone earlier link instead,
        returning the turns after it."""
        turns: list[StoredResponse] = []
        wanted: str | None = id
        while wanted is not None and len(turns) < MAX_CHAIN:
            found = await self.get(wanted, owner)
            if found is None:
                if partial and turns:
                    break
                raise ChainBroken(wanted)
            turns.append(found)
            wanted = found.previous_id
        turns.reverse()
        return turns


def _record(row: sa.Row[Any]) -> StoredResponse:
    m = row._mapping
    return StoredResponse(
        id=m["id"],
        owner=m["owner"],
        previous_id=m["previous_id"],
        model=m["model"],
        input=orjson.loads(m["input_json"]),
        response=orjson.loads(m["response_json"]),
        created_at_ms=m["created_at_ms"],
        input_items=None if m["input_items_json"] is None else orjson.loads(m["input_items_json"]),
    )
