"""The usage ledger's table: one row per request and one per upstream attempt it made."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from palyra.store import Migration, MigrationSet

metadata = sa.MetaData()

usage_ledger = sa.Table(
    "usage_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # UTC, YYYY-MM-DD: portable grouping
    sa.Column("row_kind", sa.String(8), nullable=False),  # request | attempt
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("attempt_index", sa.Integer, nullable=True),
    sa.Column("token_id", sa.String(128), nullable=True),
    sa.Column("agent_id", sa.String(128), nullable=True),
    sa.Column("run_id", sa.String(128), nullable=True),
    sa.Column("requested_model", sa.String(256), nullable=True),
    sa.Column("model_id", sa.String(256), nullable=True),
    sa.Column("provider_id", sa.String(128), nullable=True),
    sa.Column("upstream_model", sa.String(256), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cached_input_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("usage_source", sa.String(16), nullable=False),  # provider | estimated | none
    sa.Column("cost_nanousd", sa.BigInteger, nullable=True),  # NULL: the price is unknown
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),  # ok, or the failure class
    sa.Column("status", sa.Integer, nullable=True),
    sa.Index("ix_usage_ledger_at", "at_ms"),
    sa.Index("ix_usage_ledger_token_day", "token_id", "day"),
    sa.Index("ix_usage_ledger_agent_day", "agent_id", "day"),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[usage_ledger])


USAGE_SCHEMA = MigrationSet("usage_ledger", [Migration(1, "create usage_ledger", _create_v1)])
