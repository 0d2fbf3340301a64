"""The names a job may refer to, read once per change: agents (``agents.toml``) and auth profiles.

A job naming an agent that does not exist, or a profile its agent may not use, is refused when
it is written, not found out at 3 a.m. when it fires.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from palyra.auth.records import GLOBAL_SCOPE, agent_scope
from palyra.auth.tables import AUTH_PROFILES_SCHEMA, auth_profiles
from palyra.cron.job_input import Known
from palyra.store import Store


async def profile_scopes(store: Store) -> dict[str, str]:
    """Every auth profile id with its scope (no secret is read)."""
    await store.migrate(AUTH_PROFILES_SCHEMA)
    async with store.connect() as conn:
        rows = (
            await conn.execute(sa.select(auth_profiles.c.profile_id, auth_profiles.c.scope))
        ).all()
    return {str(r.profile_id): str(r.scope) for r in rows}


def known_names(agent_ids: Sequence[str], scopes: dict[str, str]) -> Known:
    def problem(profile_id: str, agent_id: str) -> str | None:
        scope = scopes.get(profile_id)
        if scope is None:
            have = ", ".join(sorted(scopes)) or "none; add one with: palyra auth"
            return f"no auth profile {profile_id!r} (profiles: {have})"
        if scope not in (GLOBAL_SCOPE, agent_scope(agent_id)):
            return (
                f"auth profile {profile_id!r} belongs to {scope}, so agent {agent_id!r} cannot "
                "use it; pick a global profile or one of this agent's"
            )
        return None

    return Known(agent_ids=list(agent_ids), profile_problem=problem)
