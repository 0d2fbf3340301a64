"""Where each component's tables stand against the migrations this Palyra ships, and the
upgrade that brings them there; what ``palyra db status|upgrade``, ``palyra serve`` and
``GET /readyz`` ask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from palyra.store.engine import Store
from palyra.store.migrations import SCHEMA_TABLE_NAME, MigrationSet, SchemaTooNew, schema_table


class SchemaState(StrEnum):
    CURRENT = "up to date"
    PENDING = "pending"
    NEWER = "newer than this Palyra"


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component: the version the database records (0: never migrated) and the latest."""

    component: str
    recorded: int
    latest: int

    @property
    def state(self) -> SchemaState:
        if self.recorded > self.latest:
            return SchemaState.NEWER
        if self.recorded < self.latest:
            return SchemaState.PENDING
        return SchemaState.CURRENT

    def describe(self) -> str:
        if self.state is SchemaState.PENDING:
            return f"{self.component} v{self.recorded} -> v{self.latest}"
        if self.state is SchemaState.NEWER:
            return f"{self.component} v{self.recorded} (this Palyra knows up to v{self.latest})"
        return f"{self.component} v{self.recorded}"


def compare(recorded: dict[str, int], sets: Sequence[MigrationSet]) -> list[ComponentStatus]:
    """Each known component against what the database records, in ``sets`` order."""
    return [ComponentStatus(s.component, recorded.get(s.component, 0), s.latest) for s in sets]


def with_state(statuses: Sequence[ComponentStatus], state: SchemaState) -> list[ComponentStatus]:
    return [s for s in statuses if s.state is state]


async def recorded_versions(store: Store) -> dict[str, int]:
    """Every component's version in ``palyra_schema`` (empty for a database never migrated)."""
    async with store.connect() as conn:
        if not await conn.run_sync(lambda c: sa.inspect(c).has_table(SCHEMA_TABLE_NAME)):
            return {}
        rows = await conn.execute(sa.select(schema_table.c.component, schema_table.c.version))
        return {str(r.component): int(r.version) for r in rows}


async def schema_status(store: Store, sets: Sequence[MigrationSet]) -> list[ComponentStatus]:
    return compare(await recorded_versions(store), sets)


def newer_problem(statuses: Sequence[ComponentStatus], where: str) -> str | None:
    """The refusal for a database written by a newer Palyra, or None."""
    newer = with_state(statuses, SchemaState.NEWER)
    if not newer:
        return None
    return (
        f"the database {where} was migrated by a newer Palyra: "
        f"{', '.join(s.describe() for s in newer)}; upgrade Palyra on this machine (every "
        "replica on one database runs the same version), or point [storage] url at another "
        "database"
    )


def pending_problem(statuses: Sequence[ComponentStatus], where: str) -> str | None:
    """The refusal to serve from a database that is not (fully) migrated, or None."""
    pending = with_state(statuses, SchemaState.PENDING)
    if not pending:
        return None
    never = all(s.recorded == 0 for s in statuses)
    what = "has no Palyra tables yet" if never else "is not fully migrated"
    return (
        f"the database {where} {what} (pending: {', '.join(s.describe() for s in pending)}); "
        "run `palyra db upgrade` once (with the same config), then start Palyra again"
    )


@dataclass(frozen=True, slots=True)
class Upgrade:
    """Where the schema stands after an upgrade, and the steps this process applied."""

    statuses: list[ComponentStatus]
    applied: list[tuple[str, int, int]]


async def upgrade_schema(store: Store, sets: Sequence[MigrationSet]) -> Upgrade:
    """Apply every pending migration; refuse, changing nothing, when any component is newer.

    Safe from several processes at once: each component migrates in one write transaction
    (on PostgreSQL under an advisory lock, on SQLite under the database's write lock), and the
    second comer finds the work done.
    """
    before = await schema_status(store, sets)
    problem = newer_problem(before, store.url)
    if problem is not None:
        raise SchemaTooNew(problem)
    applied = await store.migrate(*sets)
    return Upgrade(await schema_status(store, sets), applied)
