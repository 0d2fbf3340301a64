"""``AuthProfileRegistry``: auth profiles in the store, their secrets in the vault.

Every write is one transaction. ``update`` is optimistic: it names the ``version`` it read and
fails with :class:`ProfileConflict` if the row moved on. Usage feedback (``record_success``,
``record_failure``, ``clear_cooldown``) edits health fields only and does not bump ``version``, so
a busy profile never makes an operator's edit or an OAuth refresh conflict.

``delete`` removes the vault secrets first and the record second: a crash in between leaves a
record whose secrets are gone (``doctor`` says so and names the reconnect command), never a
readable secret under a profile that no longer exists.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from palyra.auth.doctor import Finding, diagnose, orphan_findings
from palyra.auth.policy import failure_effect
from palyra.auth.records import (
    GLOBAL_SCOPE,
    PROVIDERS,
    AuthProfileRecord,
    CredentialRefs,
    ProfileConflict,
    ProfileError,
    ProfileHealth,
    ProfileNotFound,
    agent_scope,
    normalize_profile_id,
    normalize_scope,
)
from palyra.auth.selection import Selection, select_profile
from palyra.auth.tables import AUTH_PROFILES_SCHEMA, auth_profiles
from palyra.model import ErrorEnvelope
from palyra.store import Store
from palyra.vault import Vault

Clock = Callable[[], float]
DEFAULT_PAGE = 100
MAX_PAGE = 500
# last_used_at is refreshed at most this often, so a healthy hot path rarely writes.
LAST_USED_GRANULARITY_MS = 60_000

_credential_adapter: TypeAdapter[CredentialRefs] = TypeAdapter(CredentialRefs)
_c = auth_profiles.c


@dataclass(frozen=True, slots=True)
class ProfilePage:
    """One page of ``list``; pass ``next_cursor`` back to get the next (``None``: no more)."""

    items: list[AuthProfileRecord]
    next_cursor: str | None


class AuthProfileRegistry:
    """Profiles by id; see the module docstring for the consistency rules."""

    def __init__(self, store: Store, vault: Vault, clock: Clock = time.time) -> None:
        self.store = store
        self.vault = vault
        self._clock = clock
        self._migrated = False

    def __repr__(self) -> str:
        return f"AuthProfileRegistry(store={self.store.url!r})"

    def now(self) -> datetime:
        """The injected wall clock as an aware UTC datetime, at millisecond precision."""
        return _dt(_now_ms(self._clock))

    async def migrate(self) -> None:
        """Create or upgrade the profile table; every operation calls it first (cheap)."""
        if not self._migrated:
            await self.store.migrate(AUTH_PROFILES_SCHEMA)
            self._migrated = True

    # --- reads ---
    async def list(
        self,
        *,
        provider: str | None = None,
        scope: str | None = None,
        agent_id: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> ProfilePage:
        """Profiles sorted by id. ``agent_id`` keeps those that agent can use (its own and
        global ones); ``cursor`` is the last id of the previous page."""
        await self.migrate()
        if not 1 <= limit <= MAX_PAGE:
            raise ProfileError(f"list limit must be between 1 and {MAX_PAGE}, got {limit}")
        query = sa.select(auth_profiles).order_by(_c.profile_id).limit(limit + 1)
        if provider is not None:
            query = query.where(_c.provider == _check_provider(provider))
        if scope is not None:
            query = query.where(_c.scope == normalize_scope(scope))
        if agent_id is not None:
            query = query.where(_c.scope.in_([GLOBAL_SCOPE, agent_scope(agent_id)]))
        if cursor is not None:
            query = query.where(_c.profile_id > cursor)
        async with self.store.connect() as conn:
            rows = (await conn.execute(query)).all()
        items = [_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        return ProfilePage(items, items[-1].profile_id if more and items else None)

    async def all(self, *, provider: str | None = None) -> builtins.list[AuthProfileRecord]:
        """Every profile (optionally of one provider), sorted by id."""
        await self.migrate()
        query = sa.select(auth_profiles).order_by(_c.profile_id)
        if provider is not None:
            query = query.where(_c.provider == _check_provider(provider))
        async with self.store.connect() as conn:
            return [_record(row) for row in (await conn.execute(query)).all()]

    async def find(self, profile_id: str) -> AuthProfileRecord | None:
        await self.migrate()
        pid = normalize_profile_id(profile_id)
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(auth_profiles).where(_c.profile_id == pid))).first()
        return _record(row) if row else None

    async def find_many(self, profile_ids: Sequence[str]) -> dict[str, AuthProfileRecord]:
        """The existing profiles among ``profile_ids`` by id, in one query (the hot path)."""
        await self.migrate()
        ids = [normalize_profile_id(p) for p in profile_ids]
        async with self.store.connect() as conn:
            rows = (
                await conn.execute(sa.select(auth_profiles).where(_c.profile_id.in_(ids)))
            ).all()
        return {str(row.profile_id): _record(row) for row in rows}

    async def get(self, profile_id: str) -> AuthProfileRecord:
        record = await self.find(profile_id)
        if record is None:
            raise _not_found(profile_id)
        return record

    # --- writes ---
    async def create(self, record: AuthProfileRecord) -> AuthProfileRecord:
        """Insert a new profile at version 1, ordered after its provider's existing ones."""
        await self.migrate()
        now = self.now()
        try:
            async with self.store.begin() as conn:
                top = (
                    await conn.execute(
                        sa.select(sa.func.max(_c.sort_order)).where(
                            _c.provider == record.provider, _c.scope == record.scope
                        )
                    )
                ).scalar()
                stored = record.model_copy(
                    update={
                        "order": 0 if top is None else int(top) + 1,
                        "created_at": now,
                        "updated_at": now,
                        "version": 1,
                    }
                )
                await conn.execute(sa.insert(auth_profiles).values(**_row(stored)))
        except sa.exc.IntegrityError:
            raise ProfileConflict(
                f"profile {record.profile_id} already exists; update it, or delete it first with: "
                f"palyra auth profiles delete {record.profile_id}"
            ) from None
        return stored

    async def update(
        self, record: AuthProfileRecord, *, expected_version: int
    ) -> AuthProfileRecord:
        """Replace a profile if it is still at ``expected_version``; return it at the next one."""
        await self.migrate()
        stored = record.model_copy(
            update={"version": expected_version + 1, "updated_at": self.now()}
        )
        values = _row(stored)
        del values["profile_id"], values["created_at_ms"]
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(auth_profiles)
                .where(_c.profile_id == record.profile_id, _c.version == expected_version)
                .values(**values)
            )
            if result.rowcount == 1:
                row = (
                    await conn.execute(
                        sa.select(auth_profiles).where(_c.profile_id == record.profile_id)
                    )
                ).one()
                return _record(row)
            current = (
                await conn.execute(sa.select(_c.version).where(_c.profile_id == record.profile_id))
            ).scalar()
        if current is None:
            raise _not_found(record.profile_id)
        raise ProfileConflict(
            f"profile {record.profile_id} changed since it was read (it is at version {current}, "
            f"the update expected {expected_version}); read it again and retry"
        )

    async def delete(self, profile_id: str) -> bool:
        """Delete a profile and its vault secrets (secrets first; see the module docstring)."""
        record = await self.find(profile_id)
        if record is None:
            return False
        for ref in record.secret_refs():
            await self.vault.delete(ref)
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.delete(auth_profiles).where(_c.profile_id == record.profile_id)
            )
        return bool(result.rowcount)

    async def set_order(
        self, provider: str, profile_ids: Sequence[str], *, agent_id: str | None = None
    ) -> builtins.list[AuthProfileRecord]:
        """Put these profiles first, in this order, among ``provider``'s profiles in one scope
        (global, or the agent's own); the rest keep their relative order after them."""
        await self.migrate()
        provider = _check_provider(provider)
        scope = agent_scope(agent_id) if agent_id else GLOBAL_SCOPE
        wanted = [normalize_profile_id(p) for p in profile_ids]
        if not wanted:
            raise ProfileError("give at least one profile id to order")
        duplicates = sorted({p for p in wanted if wanted.count(p) > 1})
        if duplicates:
            raise ProfileError(f"profile ids listed twice: {', '.join(duplicates)}")
        async with self.store.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(_c.profile_id, _c.sort_order)
                    .where(_c.provider == provider, _c.scope == scope)
                    .order_by(_c.sort_order, _c.profile_id)
                    .with_for_update()
                )
            ).all()
            known = [str(r.profile_id) for r in rows]
            unknown = [p for p in wanted if p not in known]
            if unknown:
                raise ProfileError(
                    f"cannot order {', '.join(unknown)}: not a {provider} profile in scope "
                    f"{scope} (there: {', '.join(known) or 'none'}); see: palyra auth profiles list"
                )
            final = wanted + [p for p in known if p not in wanted]
            for position, pid in enumerate(final):
                await conn.execute(
                    sa.update(auth_profiles).where(_c.profile_id == pid).values(sort_order=position)
                )
        records = {r.profile_id: r for r in await self.all(provider=provider)}
        return [records[p] for p in final]

    async def clear_cooldown(self, profile_id: str) -> AuthProfileRecord:
        """Make a cooling-down or needs-reauth profile usable again now (an operator's call)."""
        pid = normalize_profile_id(profile_id)
        await self._set_health(
            pid,
            health=ProfileHealth.OK.value,
            cooling_down_until_ms=None,
            last_error_category=None,
            failure_count=0,
        )
        return await self.get(pid)

    async def record_success(self, profile_id: str) -> None:
        """A call with this profile worked: clear failures; note the use (at most once a minute
        when nothing else changed, so the hot path stays read-only)."""
        await self.migrate()
        now = _now_ms(self._clock)
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(auth_profiles)
                .where(
                    _c.profile_id == profile_id,
                    sa.or_(
                        _c.health != ProfileHealth.OK.value,
                        _c.failure_count != 0,
                        _c.last_used_at_ms.is_(None),
                        _c.last_used_at_ms < now - LAST_USED_GRANULARITY_MS,
                    ),
                )
                .values(
                    health=ProfileHealth.OK.value,
                    cooling_down_until_ms=None,
                    last_error_category=None,
                    failure_count=0,
                    last_used_at_ms=now,
                )
            )

    async def record_failure(
        self, profile_id: str, envelope: ErrorEnvelope, *, during_refresh: bool = False
    ) -> AuthProfileRecord | None:
        """Apply the failure policy (see :mod:`palyra.auth.policy`); ``None`` when the profile
        is gone. ``during_refresh``: the failure came from an OAuth token refresh."""
        await self.migrate()
        async with self.store.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(auth_profiles).where(_c.profile_id == profile_id).with_for_update()
                )
            ).first()
            if row is None:
                return None
            record = _record(row)
            effect = failure_effect(record, envelope, self.now(), during_refresh=during_refresh)
            if effect is None:
                return record
            await conn.execute(
                sa.update(auth_profiles)
                .where(_c.profile_id == profile_id)
                .values(
                    health=effect.health.value,
                    cooling_down_until_ms=_ms(effect.cooling_down_until),
                    last_error_category=effect.last_error_category,
                    failure_count=effect.failure_count,
                )
            )
        return record.model_copy(
            update={
                "health": effect.health,
                "cooling_down_until": effect.cooling_down_until,
                "last_error_category": effect.last_error_category,
                "failure_count": effect.failure_count,
            }
        )

    # --- diagnosis ---
    async def doctor(self, *, agent_id: str | None = None) -> builtins.list[Finding]:
        """Findings for every profile (those ``agent_id`` can use, when given), plus secrets
        left in the vault by an interrupted connect. Reads vault metadata only."""
        records = await self.all()
        if agent_id is not None:
            visible = {GLOBAL_SCOPE, agent_scope(agent_id)}
            records = [r for r in records if r.scope in visible]
        present = {meta.ref for meta in await self.vault.list()}
        now = self.now()
        findings = [f for r in records for f in diagnose(r, present, now)]
        if agent_id is None:
            findings += orphan_findings(present, {r.profile_id for r in records})
        return findings

    async def explain_selection(self, provider: str, agent_id: str | None = None) -> Selection:
        """The profile that would serve ``provider`` for ``agent_id`` now, with every reason."""
        records = await self.all(provider=provider)
        agent = agent_scope(agent_id)[len("agent:") :] if agent_id else None
        return select_profile(records, provider, agent, self.now())

    async def _set_health(self, profile_id: str, **values: Any) -> None:
        await self.migrate()
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.update(auth_profiles).where(_c.profile_id == profile_id).values(**values)
            )
        if result.rowcount == 0:
            raise _not_found(profile_id)


def _check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise ProfileError(
            f"unknown provider {provider!r} for auth profiles; use one of: {', '.join(PROVIDERS)}"
        )
    return provider


def _not_found(profile_id: str) -> ProfileNotFound:
    return ProfileNotFound(
        f"there is no auth profile {profile_id!r}; see: palyra auth profiles list"
    )


def _now_ms(clock: Clock) -> int:
    return int(clock() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _row(record: AuthProfileRecord) -> dict[str, Any]:
    return {
        "profile_id": record.profile_id,
        "provider": record.provider,
        "display_name": record.display_name,
        "scope": record.scope,
        "credential_kind": record.credential.kind,
        "credential": orjson.dumps(record.credential.model_dump(mode="json")).decode(),
        "base_url": record.base_url,
        "health": record.health.value,
        "cooling_down_until_ms": _ms(record.cooling_down_until),
        "last_error_category": record.last_error_category,
        "failure_count": record.failure_count,
        "sort_order": record.order,
        "created_at_ms": _ms(record.created_at),
        "updated_at_ms": _ms(record.updated_at),
        "last_used_at_ms": _ms(record.last_used_at),
        "version": record.version,
    }


def _record(row: Any) -> AuthProfileRecord:
    try:
        return AuthProfileRecord(
            profile_id=row.profile_id,
            provider=row.provider,
            display_name=row.display_name,
            scope=row.scope,
            credential=_credential_adapter.validate_json(row.credential),
            base_url=row.base_url,
            health=ProfileHealth(row.health),
            cooling_down_until=_opt_dt(row.cooling_down_until_ms),
            last_error_category=row.last_error_category,
            failure_count=row.failure_count,
            order=row.sort_order,
            created_at=_dt(row.created_at_ms),
            updated_at=_dt(row.updated_at_ms),
            last_used_at=_opt_dt(row.last_used_at_ms),
            version=row.version,
        )
    except (ValidationError, ValueError) as exc:
        raise ProfileError(
            f"stored auth profile {row.profile_id!r} is invalid ({exc.__class__.__name__}); "
            f"delete it with: palyra auth profiles delete {row.profile_id}"
        ) from exc


def _opt_dt(ms: int | None) -> datetime | None:
    return None if ms is None else _dt(ms)
