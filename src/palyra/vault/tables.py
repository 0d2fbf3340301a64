"""The vault's tables and their migrations (component ``vault`` in ``palyra_schema``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.store import Migration, MigrationSet

metadata = sa.MetaData()

# One row per secret: only the current version is kept, so old data keys are gone after a put.
vault_secrets = sa.Table(
    "vault_secrets",
    metadata,
    sa.Column("scope", sa.String(140), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("format", sa.SmallInteger, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("dek_nonce", sa.LargeBinary, nullable=False),
    sa.Column("wrapped_dek", sa.LargeBinary, nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)

# Key/value facts about the master key: its id, its source kind, the passphrase KDF salt.
vault_settings = sa.Table(
    "vault_settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[vault_secrets, vault_settings])


VAULT_SCHEMA = MigrationSet(
    "vault", [Migration(1, "create vault_secrets, vault_settings", _create_v1)]
)
