"""``palyra token``: create, list and revoke the daemon's client, admin and metrics tokens.

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

from palyra.cli.common import ConfigOpt, DbUrlOpt, fail, fail_on, read_config, store_url
from palyra.config import ConfigError, agents_path, load_agents
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
SECONDS_PER_DAY = 86_400

app = typer.Typer(
    help="Daemon access tokens: create, list, revoke.", no_args_is_help=True, add_completion=False
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
    token, record = _run(
        db_url,
        lambda tokens: tokens.create(kind, name=name, expires_in_s=lifetime, agent_id=agent),
        config,
    )
    expiry = f", expires {record.public_dict(record.created_at_ms)['expires']}"
    bound = f", agent {record.agent_id}" if record.agent_id else ""
    typer.echo(
        f"created {kind.value} token {record.id} ({record.name}"
        f"{expiry if record.expires_at_ms else ''}{bound}); it is shown once, store it now:",
        err=True,
    )
    typer.echo(token)


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
        f"{shown(str(record['name']))}"
    )


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
