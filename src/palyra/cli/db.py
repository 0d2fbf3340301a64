"""``palyra db upgrade`` and ``palyra db status``: the store's migrations for every component.

Run ``upgrade`` once per release before starting the replicas (any number may run it at the same
time: one applies, the others wait and find it done). Exit codes, for scripts and deploy hooks:

- 0: every component is up to date (after ``upgrade``: it is now)
- 1: the database cannot be opened, or a migration step failed (nothing of that step is kept)
- 2: bad usage (an unknown option)
- 3: the SQLite file is damaged (left as it is; restore it from a backup)
- 4: the database was migrated by a newer Palyra (nothing was changed)
- 5: ``status`` only: migrations are pending (run ``palyra db upgrade``)
"""

from __future__ import annotations

import asyncio

import typer

from palyra.cli.common import ConfigOpt, DbUrlOpt, exit_code_for, fail, store_url
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.store import Store, StoreMissing, open_store
from palyra.store.migrations import SchemaTooNew
from palyra.store.schema_status import (
    ComponentStatus,
    SchemaState,
    Upgrade,
    compare,
    newer_problem,
    schema_status,
    upgrade_schema,
    with_state,
)

EXIT_NEWER = 4
EXIT_PENDING = 5

app = typer.Typer(
    help="The store's schema: show it (status) or migrate it (upgrade).", no_args_is_help=True
)


def render(where: str, statuses: list[ComponentStatus]) -> list[str]:
    """``component  recorded  latest  state`` per component, under the database's name."""
    width = max(len(s.component) for s in statuses)
    lines = [f"database {where}", f"{'component':<{width}}  recorded  latest  state"]
    for s in statuses:
        state = s.state.value
        if s.state is SchemaState.PENDING:
            state = f"{s.latest - s.recorded} pending"
        lines.append(f"{s.component:<{width}}  {s.recorded:>8}  {s.latest:>6}  {state}")
    return lines


async def _open(url: str, *, create: bool) -> Store:
    return await open_store(url, state_dir=state_dir(create=create), create=create)


@app.command()
def status(config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Show each component's schema version; exit 0 when all are up to date, 5 when some
    migrations are pending, 4 when the database is newer than this Palyra."""
    from palyra.daemon.schemas import STORE_SCHEMAS

    url = store_url(db_url, config)

    async def go() -> tuple[str, list[ComponentStatus]]:
        try:
            store = await _open(url, create=False)
        except StoreMissing as exc:
            return f"{exc.path} (not created yet)", compare({}, STORE_SCHEMAS)
        try:
            return store.url, await schema_status(store, STORE_SCHEMAS)
        finally:
            await store.aclose()

    try:
        where, statuses = asyncio.run(go())
    except PalyraError as exc:
        fail(exc.envelope.message, exit_code_for(exc))
    for line in render(where, statuses):
        typer.echo(line)
    problem = newer_problem(statuses, where)
    if problem is not None:
        fail(problem, EXIT_NEWER)
    pending = with_state(statuses, SchemaState.PENDING)
    if pending:
        typer.echo(f"{len(pending)} components need migrating: run `palyra db upgrade`", err=True)
        raise typer.Exit(EXIT_PENDING)


@app.command()
def upgrade(config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Apply every pending migration (safe from several replicas at once); refuses a database
    migrated by a newer Palyra."""
    from palyra.daemon.schemas import STORE_SCHEMAS

    url = store_url(db_url, config)

    async def go() -> tuple[str, Upgrade]:
        store = await _open(url, create=True)
        try:
            return store.url, await upgrade_schema(store, STORE_SCHEMAS)
        finally:
            await store.aclose()

    try:
        where, done = asyncio.run(go())
    except SchemaTooNew as exc:
        fail(exc.envelope.message, EXIT_NEWER)
    except PalyraError as exc:
        fail(exc.envelope.message, exit_code_for(exc))
    for line in render(where, done.statuses):
        typer.echo(line)
    if done.applied:
        steps = ", ".join(f"{c} v{found} -> v{reached}" for c, found, reached in done.applied)
        typer.echo(f"migrated: {steps}")
    else:
        typer.echo("nothing to do: every component was up to date")
