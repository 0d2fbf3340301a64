"""Usage figures from the ledger, grouped by token, agent, model, provider and/or day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from palyra.pricing import usd_from_nano
from palyra.store import Store
from palyra.usage.ledger_schema import usage_ledger

GROUPS: dict[str, sa.ColumnElement[str | None]] = {
    "token": usage_ledger.c.token_id,
    "agent": usage_ledger.c.agent_id,
    # The model that answered; for a request nothing answered (refused, failed), the one asked.
    "model": sa.func.coalesce(usage_ledger.c.model_id, usage_ledger.c.requested_model),
    "provider": usage_ledger.c.provider_id,
    "day": usage_ledger.c.day,
}


def group_problem(by: Sequence[str]) -> str | None:
    """Why ``by`` cannot group a report, or None."""
    for name in by:
        if name not in GROUPS:
            return f'cannot group by "{name}"; use one or more of: {", ".join(GROUPS)}'
    if len(set(by)) != len(by):
        return "each grouping may be named once"
    return None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group's totals. ``cost_usd`` adds up the priced requests; ``unpriced`` counts the
    requests whose model has no price (their cost is unknown, not 0); ``estimated`` those
    whose usage Palyra estimated because the provider reported none."""

    group: dict[str, str | None]
    requests: int
    failed: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    unpriced: int
    estimated: int

    def to_dict(self) -> dict[str, object]:
        return {
            **self.group,
            "requests": self.requests,
            "failed": self.failed,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": str(self.cost_usd),
            "cost": "unknown" if self.unpriced and not self.cost_usd else str(self.cost_usd),
            "unpriced_requests": self.unpriced,
            "estimated_requests": self.estimated,
        }


async def usage_report(
    store: Store, by: Sequence[str], since_ms: int | None = None, until_ms: int | None = None
) -> list[UsageRow]:
    """Request rows added up per group (attempt rows are detail, never counted twice)."""
    problem = group_problem(by)
    if problem is not None:
        raise ValueError(problem)
    c = usage_ledger.c
    keys = [GROUPS[name].label(name) for name in by]

    def total(column: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(column), 0)

    query = sa.select(
        *keys,
        sa.func.count().label("requests"),
        total(sa.case((c.outcome != "ok", 1), else_=0)).label("failed"),
        total(c.input_tokens).label("input_tokens"),
        total(c.cached_input_tokens).label("cached_input_tokens"),
        total(c.cache_write_tokens).label("cache_write_tokens"),
        total(c.output_tokens).label("output_tokens"),
        total(c.reasoning_tokens).label("reasoning_tokens"),
        total(c.cost_nanousd).label("cost"),
        total(sa.case((c.cost_nanousd.is_(None), 1), else_=0)).label("unpriced"),
        total(sa.case((c.usage_source == "estimated", 1), else_=0)).label("estimated"),
    ).where(c.row_kind == "request")
    if since_ms is not None:
        query = query.where(c.at_ms >= since_ms)
    if until_ms is not None:
        query = query.where(c.at_ms < until_ms)
    if keys:
        query = query.group_by(*[GROUPS[name] for name in by]).order_by(
            *[GROUPS[name] for name in by]
        )
    async with store.connect() as conn:
        result = await conn.execute(query)
        rows = result.all()
    out = []
    for row in rows:
        m = row._mapping
        if not keys and not m["requests"]:
            continue
        out.append(
            UsageRow(
                group={name: m[name] for name in by},
                requests=int(m["requests"]),
                failed=int(m["failed"]),
                input_tokens=int(m["input_tokens"]),
                cached_input_tokens=int(m["cached_input_tokens"]),
                cache_write_tokens=int(m["cache_write_tokens"]),
                output_tokens=int(m["output_tokens"]),
                reasoning_tokens=int(m["reasoning_tokens"]),
                cost_usd=usd_from_nano(int(m["cost"])),
                unpriced=int(m["unpriced"]),
                estimated=int(m["estimated"]),
            )
        )
    return out


async def spent(store: Store, *, column: str, value: str, since_ms: int) -> tuple[int, int]:
    """(tokens, nano-USD) a token or agent (``column`` token_id or agent_id) spent since then:
    what a budget starts from when a process first meets it."""
    c = usage_ledger.c
    col = c.token_id if column == "token_id" else c.agent_id
    query = sa.select(
        sa.func.coalesce(sa.func.sum(c.input_tokens + c.output_tokens), 0),
        sa.func.coalesce(sa.func.sum(c.cost_nanousd), 0),
    ).where(c.row_kind == "request", col == value, c.at_ms >= since_ms)
    async with store.connect() as conn:
        row = (await conn.execute(query)).one()
    return int(row[0]), int(row[1])
