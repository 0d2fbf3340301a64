"""The store: SQLAlchemy Core (async) on SQLite or PostgreSQL, with per-component migrations."""

from palyra.store.engine import (
    DEFAULT_STORE_URL,
    SUPPORTED_DRIVERS,
    Store,
    StoreCorrupt,
    StoreError,
    StoreMissing,
    expand_url,
    open_store,
    redact_url,
)
from palyra.store.migrations import Migration, MigrationSet, SchemaError, schema_table

__all__ = [
    "DEFAULT_STORE_URL",
    "SUPPORTED_DRIVERS",
    "Migration",
    "MigrationSet",
    "SchemaError",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreMissing",
    "expand_url",
    "open_store",
    "redact_url",
    "schema_table",
]
