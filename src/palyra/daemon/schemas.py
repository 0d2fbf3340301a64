"""Every component's tables in the one store, so ``palyra db upgrade`` migrates all of them and
``palyra serve`` / ``GET /readyz`` can tell a database that is not migrated."""

from __future__ import annotations

from palyra.auth.oauth_attempts import OAUTH_SCHEMA
from palyra.auth.tables import AUTH_PROFILES_SCHEMA
from palyra.cron.store import CRON_SCHEMA
from palyra.daemon.security.console_sessions import SESSIONS_SCHEMA
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA
from palyra.store import MigrationSet
from palyra.store.responses import RESPONSES_SCHEMA
from palyra.usage.ledger_schema import USAGE_SCHEMA
from palyra.vault import VAULT_SCHEMA

STORE_SCHEMAS: tuple[MigrationSet, ...] = (
    VAULT_SCHEMA,
    AUTH_PROFILES_SCHEMA,
    OAUTH_SCHEMA,
    TOKENS_SCHEMA,
    CRON_SCHEMA,
    RESPONSES_SCHEMA,
    SESSIONS_SCHEMA,
    USAGE_SCHEMA,
)
