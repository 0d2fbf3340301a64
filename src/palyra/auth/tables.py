"""The auth profile table and its migrations (component ``auth_profiles`` in ``palyra_schema``).

Times are epoch milliseconds. The credential (vault refs and OAuth metadata) is one JSON text
column: it is read and written whole with the record and never queried by field.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.store import Migration, MigrationSet

metadata = sa.MetaData()

auth_profiles = sa.Table(
    "auth_profiles",
    metadata,
    sa.Column("profile_id", sa.String(128), primary_key=True),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("display_name", sa.String(256), nullable=False),
    sa.Column("scope", sa.String(140), nullable=False),
    sa.Column("credential_kind", sa.String(16), nullable=False),
    sa.Column("credential", sa.Text, nullable=False),
    sa.Column("base_url", sa.Text, nullable=True),
    sa.Column("health", sa.String(16), nullable=False),
    sa.Column("cooling_down_until_ms", sa.BigInteger, nullable=True),
    sa.Column("last_error_category", sa.String(64), nullable=True),
    sa.Column("failure_count", sa.Integer, nullable=False),
    sa.Column("sort_order", sa.Integer, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    sa.Column("last_used_at_ms", sa.BigInteger, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_auth_profiles_provider_scope", "provider", "scope", "sort_order"),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[auth_profiles])


AUTH_PROFILES_SCHEMA = MigrationSet(
    "auth_profiles", [Migration(1, "create auth_profiles", _create_v1)]
)
