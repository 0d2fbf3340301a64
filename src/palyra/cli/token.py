"""``palyra token``: create, list, revoke and update the daemon's client, admin and metrics
tokens, and a client token's limits and budgets (``--models``, ``--rpm``, ``--budget-usd-month``...).

``create`` prints the token once, alone on stdout (so ``TOKEN=$(palyra token create)`` works),
with its id and kind on stderr; only its hash is stored. ``list`` never shows a token. A running
daemon keeps accepting a revoked token for up to its cache TTL (30 s); with ``[storage]
redis_url`` ``revoke`` also announces it on Redis, and every replica refuses it at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from palyra.cli.common import ConfigOpt, DbUrlOpt, fail, fail_on, read_config, store_url
from palyra.config import ConfigError, agents_path, load_agents
from palyra.config.schema import LimitSpec
from palyra.daemon.security.tokens_store import (
    MAX_LIFETIME_DAYS,
    TOKENS_SCHEMA,
    TokenKind,
    TokenRecord,
    TokenStore,
)
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.sharedstate import SharedStateLink, publish_revoked
from palyra.store import Store, StoreMissing, open_store

T = TypeVar("T")
ModelsOpt = Annotated[
    list[str] | None,
    typer.Option("--models", help="Models (ids or aliases) this client token may call; a,b."),
]
RpmOpt = Annotated[int | None, typer.Option("--rpm", min=0, help="Requests per minute.")]
TpmOpt = Annotated[int | None, typer.Option("--tpm", min=0, help="Tokens per minute.")]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=0, help="Requests in flight at once.")
]
UsdDayOpt = Annotated[
    float | None, typer.Option("--budget-usd-day", min=0, help="USD per UTC day.")
]
UsdMonthOpt = Annotated[
    float | None, typer.Option("--budget-usd-month", min=0, help="USD per calendar month.")
]
TokensDayOpt = Annotated[
    int | None, typer.Option("--budget-tokens-day", min=0, help="Tokens per UTC day.")
]
TokensMonthOpt = Annotated[
    int | None, typer.Option("--budget-tokens-month", min=0, help="Tokens per calendar month.")
]
SoftOpt = Annotated[
    float | None,
    typer.Option(
        "--soft-ratio", min=0, max=1, help="Warn past this share of a budget (default 0.8)."
    ),
]
SECONDS_PER_DAY = 86_400

app = typer.Typer(
    help="Daemon access tokens: create, list, revoke, update limits.",
    no_args_is_help=True,
    add_completion=False,
)


def _run(
    db_url: str | None,
    action: Callable[[TokenStore], Awaitable[T]],
    config: Path | None = None,
    *,
    empty: Callable[[], T] | None = None,
) -> T:
    """Open the store, run ``action`` on the token table, close; Palyra errors exit 1 (3 for a
    damaged store). With ``empty`` (commands that only read) a database that does not exist yet
    is not created: ``empty()`` answers instead."""
    url = store_url(db_url, config)

    async def go() -> T:
        store: Store | None = None
        try:
            store = await open_store(
                url,
                state_dir=state_dir(create=empty is None),
                migrations=(TOKENS_SCHEMA,),
                create=empty is None,
            )
            return await action(TokenStore(store))
        except StoreMissing:
            if empty is None:
                raise
            return empty()
        finally:
            if store is not None:
                await store.aclose()

    try:
        return asyncio.run(go())
    except PalyraError as exc:
        fail_on(exc)


@app.command()
def create(
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin token (for /console/v1), not a client one.")
    ] = False,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics", help="A metrics token: it reads /metrics and can do nothing else."
        ),
    ] = False,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
    expires_days: Annotated[
        int | None,
        typer.Option(
            "--expires-days",
            min=1,
            max=MAX_LIFETIME_DAYS,
            help="Expire after this many days (default: never).",
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            help="Bind this client token to an agent of agents.toml: its /v1 requests use that "
            "agent's auth profiles.",
        ),
    ] = None,
    models: ModelsOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    concurrency: ConcurrencyOpt = None,
    budget_usd_day: UsdDayOpt = None,
    budget_usd_month: UsdMonthOpt = None,
    budget_tokens_day: TokensDayOpt = None,
    budget_tokens_month: TokensMonthOpt = None,
    soft_ratio: SoftOpt = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it once; only its hash is kept."""
    if admin and metrics:
        fail("a token is an admin token or a metrics token, not both: give --admin or --metrics")
    kind = TokenKind.ADMIN if admin else TokenKind.METRICS if metrics else TokenKind.CLIENT
    lifetime = None if expires_days is None else expires_days * SECONDS_PER_DAY
    if agent is not None and not admin:
        _require_agent(agent, config)
    given = _given(
        models,
        rpm,
        tpm,
        concurrency,
        budget_usd_day,
        budget_usd_month,
        budget_tokens_day,
        budget_tokens_month,
        soft_ratio,
    )
    limits = _limits({}, given, config) if given else None
    token, record = _run(
        db_url,
        lambda tokens: tokens.create(
            kind, name=name, expires_in_s=lifetime, agent_id=agent, limits=limits
        ),
        config,
    )
    expiry = f", expires {record.public_dict(record.created_at_ms)['expires']}"
    bound = f", agent {record.agent_id}" if record.agent_id else ""
    typer.echo(
        f"created {kind.value} token {record.id} ({record.name}"
        f"{expiry if record.expires_at_ms else ''}{bound}); it is shown once, store it now:",
        err=True,
    )
    if record.limits is not None:
        typer.echo(f"limits: {_limits_text(record.limits)}", err=True)
    typer.echo(token)


@app.command()
def update(
    token_id: Annotated[str, typer.Argument(help="Token id from `palyra token list`.")],
    models: ModelsOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    concurrency: ConcurrencyOpt = None,
    budget_usd_day: UsdDayOpt = None,
    budget_usd_month: UsdMonthOpt = None,
    budget_tokens_day: TokensDayOpt = None,
    budget_tokens_month: TokensMonthOpt = None,
    soft_ratio: SoftOpt = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Lift every limit first (then set the ones given).")
    ] = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Change a client token's limits: the ones given are set (0 lifts a number, --models ''
    lifts the allowlist), the others kept. A running daemon applies them within 30 s."""
    given = _given(
        models,
        rpm,
        tpm,
        concurrency,
        budget_usd_day,
        budget_usd_month,
        budget_tokens_day,
        budget_tokens_month,
        soft_ratio,
    )
    if not given and not clear:
        fail("nothing to change: give --models, --rpm, --tpm, --concurrency, --budget-* or --clear")

    async def change(tokens: TokenStore) -> TokenRecord | None:
        current = next((r for r in await tokens.list() if r.id == token_id), None)
        if current is None:
            return None
        base = (
            {}
            if clear or current.limits is None
            else current.limits.model_dump(exclude_defaults=True)
        )
        return await tokens.update_limits(token_id, _limits(base, given, config))

    record: TokenRecord | None = _run(db_url, change, config, empty=lambda: None)
    if record is None:
        fail(f"there is no token {token_id!r}; see: palyra token list")
    shown_limits = _limits_text(record.limits) if record.limits else "none"
    typer.echo(
        f"updated {record.kind.value} token {record.id} ({shown(record.name)}): limits {shown_limits}"
    )


def _given(
    models: list[str] | None,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    budget_usd_day: float | None,
    budget_usd_month: float | None,
    budget_tokens_day: int | None,
    budget_tokens_month: int | None,
    soft_ratio: float | None,
) -> dict[str, object]:
    """The limit flags given, by LimitSpec field (``--models a,b`` and repeats joined)."""
    found: dict[str, object] = {}
    if models is not None:
        found["models"] = [m.strip() for item in models for m in item.split(",") if m.strip()]
    numbers = {
        "rpm": rpm,
        "tpm": tpm,
        "concurrency": concurrency,
        "budget_usd_day": budget_usd_day,
        "budget_usd_month": budget_usd_month,
        "budget_tokens_day": budget_tokens_day,
        "budget_tokens_month": budget_tokens_month,
        "soft_ratio": soft_ratio,
    }
    found.update({k: v for k, v in numbers.items() if v is not None})
    return found


def _limits(base: dict[str, object], given: dict[str, object], config: Path | None) -> LimitSpec:
    """``base`` with ``given`` applied (0, or an empty --models, lifts that limit), checked;
    an allowlist must name models (or aliases) of palyra.toml."""
    merged = dict(base)
    for key, value in given.items():
        if key != "soft_ratio" and (value == 0 or value == []):
            merged.pop(key, None)
        else:
            merged[key] = value
    try:
        limits = LimitSpec.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        flag = "--" + str(error["loc"][0]).replace("_", "-")
        fail(f"{flag}: {error['msg'].lower()}")
    if limits.models:
        cfg = read_config(config, "--models")
        known = [n for m in cfg.model_provider.models for n in (m.id, *m.aliases)]
        known += [g.id for g in cfg.model_provider.routing_groups]
        unknown = [m for m in limits.models if m not in known]
        if unknown:
            fail(
                f"--models: {', '.join(unknown)} not configured (known: {', '.join(known)}); "
                "see: palyra models list"
            )
    return limits


def _limits_text(limits: LimitSpec) -> str:
    parts = []
    for key, value in limits.model_dump(exclude_defaults=True).items():
        parts.append(f"{key}={','.join(value) if isinstance(value, list) else value}")
    return " ".join(parts) or "none"


def shown(text: str) -> str:
    """``text`` safe for a terminal: control characters (a name stored before they were
    refused) printed as escapes such as ``\\x1b``, never sent raw."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _row(record: dict[str, object]) -> str:
    return (
        f"{record['id']}  {record['kind']:<7}  {record['status']:<7}  "
        f"created {record['created']}  expires {record['expires'] or 'never'}  "
        f"last used {record['last_used'] or 'never'}  agent {record['agent'] or '-'}  "
        f"{shown(str(record['name']))}{_limits_row(record.get('limits'))}"
    )


def _limits_row(limits: object) -> str:
    if not isinstance(limits, dict) or not limits:
        return ""
    return "  limits " + _limits_text(LimitSpec.model_validate(limits))


def _require_agent(agent_id: str, config: Path | None) -> None:
    """Refuse an agent that agents.toml (in the state dir) does not define, naming the fix."""
    cfg = read_config(config, "--agent")
    try:
        known = [a.id for a in load_agents(agents_path(state_dir()), cfg)]
    except ConfigError as exc:
        fail(f"cannot read agents.toml for --agent:\n{exc}")
    if agent_id not in known:
        fail(
            f'no agent "{agent_id}" in {agents_path(state_dir())} (known: '
            f"{', '.join(known) or 'none'}); add it with: palyra agents add {agent_id} --model ..."
        )


@app.command("list")
def list_tokens(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List tokens: id, kind, status, dates and name, never the token."""

    async def listing(tokens: TokenStore) -> list[dict[str, object]]:
        now = tokens.now_ms()
        return [r.public_dict(now) for r in await tokens.list()]

    records: list[dict[str, object]] | None = _run(db_url, listing, config, empty=lambda: None)
    if as_json:
        typer.echo(json.dumps(records or [], indent=2))
    elif records is None:
        typer.echo("no tokens: nothing is stored yet; create one with: palyra token create")
    elif not records:
        typer.echo("no tokens; create one with: palyra token create")
    else:
        for record in records:
            typer.echo(_row(record))


@app.command()
def revoke(
    token_id: Annotated[str, typer.Argument(help="Token id from `palyra token list`.")],
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a token: running daemons refuse it within 30 s, or at once with [storage] redis_url."""
    record: TokenRecord | None = _run(
        db_url, lambda tokens: tokens.revoke(token_id), config, empty=lambda: None
    )
    if record is None:
        fail(f"there is no token {token_id!r}; see: palyra token list")
    typer.echo(f"revoked {record.kind.value} token {record.id} ({shown(record.name)})")
    typer.echo(_announce(record.id, config), err=True)


def _announce(token_id: str, config: Path | None) -> str:
    """Tell running replicas through Redis, when ``[storage] redis_url`` names one; what
    happened, for the user."""
    link = SharedStateLink.from_url(read_config(config, "[storage] redis_url").storage.redis_url)
    if link is None:
        return "running daemons refuse it within 30 s (their token cache; no [storage] redis_url)"

    async def tell() -> bool:
        try:
            return await publish_revoked(link, token_id, serving=False)
        finally:
            await link.aclose()

    if asyncio.run(tell()):
        return f"every running replica was told through Redis at {link.shown}"
    return (
        f"Redis at {link.shown} did not answer: running daemons refuse it within 30 s "
        "(their token cache)"
    )


__all__ = ["app"]
