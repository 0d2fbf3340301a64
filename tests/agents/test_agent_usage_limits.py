"""Agent runs and usage: each turn lands in the ledger under the agent and run, and a hard
budget stops a run mid-loop with ``budget_exhausted`` (the model had asked for a tool; the next
turn is never sent)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from agent_support import CRON, KEY_ENV, agent, collect, config_for, of_type

from palyra.agents import AgentRuntime, default_registry
from palyra.config.schema import LimitsConfig, LimitSpec
from palyra.pricing import pricing_table
from palyra.routing.assembly import build_runtime
from palyra.store import Store
from palyra.testing import FakeUpstream
from palyra.usage import USAGE_SCHEMA, MemoryWindows, Metering, UsageLedger, spent, usage_ledger

TOOL_PROMPT = 'please call calculate {"expression": "2**10"} now'


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-agent-test")


async def _run(fake: FakeUpstream, store: Store, spec: LimitSpec | None) -> list:
    config = config_for(fake)
    limits = LimitsConfig(agents={} if spec is None else {"ops": spec})
    async with build_runtime(config) as runtime:
        pricing = pricing_table()
        kinds = {p.id: p.kind for p in config.model_provider.providers}
        ledger = UsageLedger(store, pricing, kinds)

        async def seed(kind: str, ident: str, since: float) -> tuple[int, int]:
            return await spent(store, column="agent_id", value=ident, since_ms=int(since * 1000))

        metering = Metering(
            limits=limits,
            providers=config.model_provider.providers,
            resolve=runtime.registry.resolve,
            pricing=pricing,
            windows=MemoryWindows(),
            seed=seed,  # type: ignore[arg-type]
            ledger=ledger,
        )
        rt = AgentRuntime(
            runtime.router,
            [agent(tools=["calculate"])],
            tools=default_registry(),
            metering=metering,
        )
        events = await collect(rt.run("ops", TOOL_PROMPT, CRON))
        await ledger.aclose()
    return events


async def test_each_turn_of_a_run_is_in_the_ledger_under_its_agent_and_run(store: Store) -> None:
    await store.migrate(USAGE_SCHEMA)
    with FakeUpstream() as fake:
        events = await _run(fake, store, None)
    assert events[-1].type == "run_completed"
    turns = of_type(events, "turn_completed")
    async with store.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in await conn.execute(
                sa.select(usage_ledger)
                .where(usage_ledger.c.row_kind == "request")
                .order_by(usage_ledger.c.request_id)
            )
        ]
    assert [r["request_id"] for r in rows] == ["run-1:1", "run-1:2"]
    for row, turn in zip(rows, turns, strict=True):
        assert (row["agent_id"], row["run_id"], row["model_id"], row["outcome"]) == (
            "ops",
            "run-1",
            "main",
            "ok",
        )
        assert (row["input_tokens"], row["output_tokens"]) == (
            turn["usage"]["input_tokens"],
            turn["usage"]["output_tokens"],
        )
        assert row["cost_nanousd"] > 0  # gpt-4o-mini is priced


async def test_a_hard_usd_budget_stops_the_run_mid_loop_with_budget_exhausted(
    store: Store,
) -> None:
    await store.migrate(USAGE_SCHEMA)
    # gpt-4o-mini: the first turn costs some thousand nano-USD, over a budget of 10, so the
    # second turn (the tool result going back to the model) is refused.
    spec = LimitSpec(budget_usd_day=0.00000001)
    with FakeUpstream() as fake:
        events = await _run(fake, store, spec)
        sent = [r for r in fake.requests if r.path == "/v1/chat/completions"]
    assert of_type(events, "tool_call"), "the model asked for a tool: the loop had a next turn"
    final = events[-1]
    assert final.type == "run_failed"
    assert final.data["reason"] == "budget_exhausted"
    assert final.data["turns"] == 2
    assert re.fullmatch(
        r'agent "ops" has used its daily budget \(budget_usd_day\) of 0\.00000001 USD: 0\.\d+ USD '
        r"spent; it resets at \d{4}-\d\d-\d\dT00:00:00Z \(in \d+ s\)",
        final.data["message"],
    ), final.data["message"]
    assert len(sent) == 1, "the refused turn never reached the upstream"
