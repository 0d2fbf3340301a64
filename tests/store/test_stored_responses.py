"""Stored Responses on SQLite and PostgreSQL: owners, chains, deletion and retention."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from palyra.store import Store
from palyra.store.migrations import MigrationSet
from palyra.store.responses import (
    RESPONSES_SCHEMA,
    ChainBroken,
    ResponseStore,
    stored_responses,
)

DAY_S = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def _responses(store: Store, clock: Clock, days: float = 30.0) -> ResponseStore:
    await store.migrate(RESPONSES_SCHEMA)
    return ResponseStore(store, retention_days=days, clock=clock)


async def _save(
    kept: ResponseStore, id: str, owner: str = "tok_a", prev: str | None = None
) -> None:
    body: dict[str, Any] = {"id": id, "object": "response", "output": []}
    turn = [{"role": "user", "content": [{"type": "text", "text": id}]}]
    await kept.save(id=id, owner=owner, previous_id=prev, model="m", input=turn, response=body)


async def test_a_saved_response_comes_back_to_its_owner_only(store: Store) -> None:
    kept = await _responses(store, Clock())
    await _save(kept, "resp_1")
    found = await kept.get("resp_1", "tok_a")
    assert found is not None
    assert found.response == {"id": "resp_1", "object": "response", "output": []}
    assert found.input[0]["content"][0]["text"] == "resp_1"
    assert await kept.get("resp_1", "tok_b") is None
    assert await kept.delete("resp_1", "tok_b") is False
    assert await kept.get("resp_1", "tok_a") is not None


async def test_chain_walks_back_to_the_first_turn_and_names_a_missing_link(store: Store) -> None:
    kept = await _responses(store, Clock())
    await _save(kept, "resp_1")
    await _save(kept, "resp_2", prev="resp_1")
    await _save(kept, "resp_3", prev="resp_2")
    assert [t.id for t in await kept.chain("resp_3", "tok_a")] == ["resp_1", "resp_2", "resp_3"]
    assert await kept.delete("resp_2", "tok_a") is True
    with pytest.raises(ChainBroken) as broken:
        await kept.chain("resp_3", "tok_a")
    assert broken.value.missing == "resp_2"
    with pytest.raises(ChainBroken):
        await kept.chain("resp_3", "tok_b")


async def test_expired_responses_are_invisible_then_purged(store: Store) -> None:
    clock = Clock()
    kept = await _responses(store, clock, days=1)
    await _save(kept, "resp_old")
    clock.now += DAY_S - 1
    assert await kept.get("resp_old", "tok_a") is not None
    clock.now += 2
    assert await kept.get("resp_old", "tok_a") is None
    assert await kept.delete("resp_old", "tok_a") is False
    await _save(kept, "resp_new")
    async with store.connect() as conn:
        ids = (await conn.execute(sa.select(stored_responses.c.id))).scalars().all()
    assert ids == ["resp_new"]


async def test_zero_retention_keeps_responses_until_deleted(store: Store) -> None:
    clock = Clock()
    kept = await _responses(store, clock, days=0)
    await _save(kept, "resp_kept")
    clock.now += 10_000 * DAY_S
    assert await kept.get("resp_kept", "tok_a") is not None


async def test_purging_runs_at_most_once_a_minute(store: Store) -> None:
    clock = Clock()
    kept = await _responses(store, clock, days=1)

    async def in_table() -> list[str]:
        async with store.connect() as conn:
            rows = await conn.execute(sa.select(stored_responses.c.id))
            return sorted(rows.scalars().all())

    await _save(kept, "resp_a")  # the first save purges
    clock.now += DAY_S - 10
    await _save(kept, "resp_b")  # a day later it purges again; resp_a has 10 s left
    clock.now += 20
    await _save(kept, "resp_c")  # resp_a has expired, but the last purge was 20 s ago
    assert await in_table() == ["resp_a", "resp_b", "resp_c"]
    assert await kept.get("resp_a", "tok_a") is None
    clock.now += 50
    await _save(kept, "resp_d")  # 70 s after the last purge: resp_a goes
    assert await in_table() == ["resp_b", "resp_c", "resp_d"]


async def test_input_items_are_kept_as_sent_and_a_partial_chain_skips_a_gone_link(
    store: Store,
) -> None:
    kept = await _responses(store, Clock())
    items = [{"id": "msg_1", "type": "message", "role": "user", "content": "x"}]
    body: dict[str, Any] = {"id": "resp_1", "object": "response", "output": []}
    await kept.save(
        id="resp_1", owner="tok_a", previous_id=None, model="m", input=[], response=body,
        input_items=items,
    )  # fmt: skip
    await _save(kept, "resp_2", prev="resp_1")
    await _save(kept, "resp_3", prev="resp_2")
    found = await kept.get("resp_1", "tok_a")
    assert found is not None and found.input_items == items
    second = await kept.get("resp_2", "tok_a")
    assert second is not None and second.input_items is None  # none given
    await kept.delete("resp_2", "tok_a")
    assert [t.id for t in await kept.chain("resp_3", "tok_a", partial=True)] == ["resp_3"]
    with pytest.raises(ChainBroken):
        await kept.chain("resp_2", "tok_a", partial=True)  # the response itself is gone


async def test_rows_stored_before_schema_step_2_read_with_no_input_items(store: Store) -> None:
    first_step = MigrationSet("stored_responses", RESPONSES_SCHEMA.migrations[:1])
    await store.migrate(first_step)
    async with store.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO stored_responses (id, owner, previous_id, model, input_json, "
                "response_json, created_at_ms, expires_at_ms) VALUES ('resp_old', 'tok_a', NULL, "
                "'m', '[]', '{\"id\": \"resp_old\"}', 1, NULL)"
            )
        )
    kept = await _responses(store, Clock())  # migrates to the latest step
    found = await kept.get("resp_old", "tok_a")
    assert found is not None
    assert found.response == {"id": "resp_old"} and found.input_items is None
