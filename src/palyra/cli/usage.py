"""``palyra usage``: the usage ledger's totals per token, agent, model, provider and/or day.

Reads the store directly (a running daemon writes its ledger every half second, so the figures
trail it by at most that). Costs are at the pricing table's rates; ``unknown`` is a model with
no price, ``~`` marks groups holding estimated usage.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import typer

from palyra.cli.common import ConfigOpt, DbUrlOpt, fail, fail_on, store_url
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.store import Store, StoreMissing, open_store
from palyra.usage import USAGE_SCHEMA, UsageRow, group_problem, usage_report
from palyra.usage.since import parse_since

_COLUMNS = (
    "requests",
    "failed",
    "input",
    "cached",
    "cache_write",
    "output",
    "reasoning",
    "cost_usd",
)


def usage(
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Group by token, agent, model, provider or day; repeat or comma-separate "
            "for several (--by token,model).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From: a span back (90m, 24h, 7d) or a UTC date/time."),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Up to (same forms).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Usage and cost from the ledger: one line per group."""
    groups = [g.strip() for item in by or [] for g in item.split(",") if g.strip()]
    problem = group_problem(groups)
    if problem is not None:
        fail(f"--by: {problem}")
    now = time.time()
    try:
        since_at = parse_since(since, now) if since else None
        until_at = parse_since(until, now) if until else None
    except ValueError as exc:
        fail(f"--since/--until: {exc}")
    url = store_url(db_url, config)

    async def go() -> list[UsageRow] | None:
        store: Store | None = None
        try:
            store = await open_store(
                url, state_dir=state_dir(create=False), migrations=(USAGE_SCHEMA,), create=False
            )
            return await usage_report(
                store,
                groups,
                since_ms=None if since_at is None else int(since_at * 1000),
                until_ms=None if until_at is None else int(until_at * 1000),
            )
        except StoreMissing:
            return None
        finally:
            if store is not None:
                await store.aclose()

    try:
        rows = asyncio.run(go())
    except PalyraError as exc:
        fail_on(exc)
    if as_json:
        typer.echo(json.dumps({"by": groups, "data": [r.to_dict() for r in rows or []]}, indent=2))
        return
    if not rows:
        typer.echo("no usage recorded" + (" in that time" if since or until else " yet"))
        return
    typer.echo(render_table(groups, rows))


def _cost(row: UsageRow) -> str:
    if row.unpriced and not row.cost_usd:
        return "unknown"
    shown = f"{row.cost_usd:.6f}"
    return f"{shown}+unknown" if row.unpriced else shown


def render_table(groups: list[str], rows: list[UsageRow]) -> str:
    """Aligned columns: the groups, then the figures; ``~`` after a group with estimates."""
    header = [*groups, *_COLUMNS]
    lines = [header]
    for row in rows:
        names = [str(row.group[g]) if row.group[g] is not None else "-" for g in groups]
        if row.estimated and names:
            names[-1] += " ~"
        lines.append(
            [
                *names,
                str(row.requests),
                str(row.failed),
                str(row.input_tokens),
                str(row.cached_input_tokens),
                str(row.cache_write_tokens),
                str(row.output_tokens),
                str(row.reasoning_tokens),
                _cost(row),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for line in lines:
        cells = [
            cell.ljust(w) if i < len(groups) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    if any(r.estimated for r in rows):
        out.append("~ holds usage Palyra estimated (the provider reported none)")
    return "\n".join(out)
