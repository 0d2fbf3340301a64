"""Versioned schema migrations, one numbered sequence per component.

Each component (``vault``, ``auth``, ...) owns a :class:`MigrationSet`: an ordered list of numbered
steps. The version each component has reached is recorded in the ``palyra_schema`` table, so two
modules can grow their tables independently without fighting over one global number.

Adding tables for a new component::

    def _create_profiles(conn: Connection) -> None:
        sa.Table("auth_profiles", sa.MetaData(), sa.Column("id", sa.String(128), primary_key=True),
                 ...).create(conn)

    AUTH_SCHEMA = MigrationSet("auth", [Migration(1, "create auth_profiles", _create_profiles)])

    await store.migrate(AUTH_SCHEMA)   # idempotent; call it before first use

A step receives a *synchronous* SQLAlchemy ``Connection`` inside the migration transaction and must
use portable Core constructs (``Table.create``, ``insert``, ``update``) or, to alter existing tables,
``alembic.operations.Operations(MigrationContext.configure(conn))``. Never edit a released step;
append a new one with the next number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.model import FailureClass, PalyraError

SCHEMA_TABLE_NAME = "palyra_schema"

_schema_metadata = sa.MetaData()
schema_table = sa.Table(
    SCHEMA_TABLE_NAME,
    _schema_metadata,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


class SchemaError(PalyraError):
    """The database schema cannot be used by this Palyra (too new, or a step failed)."""

    def __init__(self, message: str) -> None:
        super().__init__(PalyraError.of(FailureClass.CONFIG, message).envelope)


class SchemaTooNew(SchemaError):
    """The database was migrated by a newer Palyra; nothing was changed."""


@dataclass(frozen=True)
class Migration:
    """One numbered, never-edited schema step."""

    version: int
    description: str
    apply: Callable[[Connection], None]


class MigrationSet:
    """The ordered migrations of one component; numbers start at 1 with no gaps."""

    def __init__(self, component: str, migrations: Sequence[Migration]) -> None:
        numbers = [m.version for m in migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(
                f"migrations of {component!r} must be numbered 1..{len(numbers)} in order, "
                f"got {numbers}"
            )
        self.component = component
        self.migrations = tuple(migrations)

    @property
    def latest(self) -> int:
        return len(self.migrations)

    def __repr__(self) -> str:
        return f"MigrationSet({self.component!r}, latest={self.latest})"


def ensure_schema_table(conn: Connection) -> None:
    """Create the version table if this is a fresh database."""
    schema_table.create(conn, checkfirst=True)


def current_version(conn: Connection, component: str) -> int:
    """The version a component has reached in this database (0 when never migrated)."""
    row = conn.execute(
        sa.select(schema_table.c.version)
        .where(schema_table.c.component == component)
        .with_for_update()
    ).first()
    return int(row[0]) if row else 0


def apply_migrations(conn: Connection, migrations: MigrationSet, where: str) -> tuple[int, int]:
    """Apply pending steps inside the caller's transaction; return the version found and the
    version reached (equal when there was nothing to do).

    ``where`` names the database (password redacted) for error messages.
    """
    ensure_schema_table(conn)
    version = current_version(conn, migrations.component)
    if version > migrations.latest:
        raise SchemaTooNew(
            f"the database {where} has {migrations.component} schema version {version}, but this "
            f"Palyra only knows up to version {migrations.latest}; it was written by a newer "
            "Palyra. Upgrade Palyra, or point [storage] url at another database."
        )
    for step in migrations.migrations[version:]:
        try:
            step.apply(conn)
        except Exception as exc:
            raise SchemaError(
                f"{migrations.component} migration {step.version} ({step.description}) failed on "
                f"{where}: {exc.__class__.__name__}: {exc}"
            ) from exc
    if migrations.latest != version:
        if version == 0:
            conn.execute(
                sa.insert(schema_table).values(
                    component=migrations.component, version=migrations.latest
                )
            )
        else:
            conn.execute(
                sa.update(schema_table)
                .where(schema_table.c.component == migrations.component)
                .values(version=migrations.latest)
            )
    return version, migrations.latest
