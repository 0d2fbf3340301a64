"""Which profile serves a provider for an agent, and why each candidate was or was not chosen.

Rank: profiles scoped to the asking agent first, then global ones; within each, ``order`` then
profile id. The first usable profile in rank is chosen. Unusable: ``needs_reauth``, cooling down,
or scoped to a different agent. An expired or expiring OAuth profile stays usable: the
credential source refreshes it before use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from palyra.auth.policy import effective_health
from palyra.auth.records import GLOBAL_SCOPE, AuthProfileRecord, ProfileHealth


@dataclass(frozen=True, slots=True)
class Candidate:
    """One profile considered for a selection, with the reason it was (not) chosen."""

    profile_id: str
    scope: str
    order: int
    health: ProfileHealth
    usable: bool
    chosen: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Selection:
    provider: str
    agent_id: str | None
    chosen: str | None
    candidates: tuple[Candidate, ...]

    def usable_ids(self) -> list[str]:
        """Usable profile ids in rank order: the rotation routing follows."""
        return [c.profile_id for c in self.candidates if c.usable]

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "agent_id": self.agent_id,
            "chosen": self.chosen,
            "candidates": [asdict(c) for c in self.candidates],
        }


def select_profile(
    records: Iterable[AuthProfileRecord], provider: str, agent_id: str | None, now: datetime
) -> Selection:
    """Rank ``provider``'s profiles for ``agent_id`` at ``now`` (pure)."""
    own_scope = f"agent:{agent_id}" if agent_id else None
    in_scope: list[AuthProfileRecord] = []
    others: list[AuthProfileRecord] = []
    for record in records:
        if record.provider != provider:
            continue
        if record.scope == GLOBAL_SCOPE or record.scope == own_scope:
            in_scope.append(record)
        else:
            others.append(record)
    in_scope.sort(key=lambda r: (r.scope == GLOBAL_SCOPE, r.order, r.profile_id))
    others.sort(key=lambda r: (r.scope, r.order, r.profile_id))

    candidates: list[Candidate] = []
    chosen: str | None = None
    for record in in_scope:
        health = effective_health(record, now)
        blocked = _blocked_reason(record, health)
        rank = (
            f"{'agent' if record.scope != GLOBAL_SCOPE else 'global'} scope, order {record.order}"
        )
        if blocked is not None:
            candidates.append(_candidate(record, health, False, False, f"{blocked} ({rank})"))
            continue
        note = _usable_note(health)
        if chosen is None:
            chosen = record.profile_id
            reason = f"chosen: first usable profile by rank ({rank}){note}"
            candidates.append(_candidate(record, health, True, True, reason))
        else:
            reason = f"usable, ranked after {chosen} ({rank}){note}"
            candidates.append(_candidate(record, health, True, False, reason))
    for record in others:
        health = effective_health(record, now)
        hint = f"; pass --agent {record.agent_id} to use it" if agent_id is None else ""
        reason = f"scoped to {record.scope}, not {own_scope or 'the global scope'}{hint}"
        candidates.append(_candidate(record, health, False, False, reason))
    return Selection(provider, agent_id, chosen, tuple(candidates))


def _candidate(
    record: AuthProfileRecord, health: ProfileHealth, usable: bool, chosen: bool, reason: str
) -> Candidate:
    return Candidate(record.profile_id, record.scope, record.order, health, usable, chosen, reason)


def _blocked_reason(record: AuthProfileRecord, health: ProfileHealth) -> str | None:
    last = f" after {record.last_error_category}" if record.last_error_category else ""
    if health is ProfileHealth.NEEDS_REAUTH:
        return f"needs re-auth{last}"
    if health is ProfileHealth.COOLING_DOWN:
        assert record.cooling_down_until is not None
        return f"cooling down until {record.cooling_down_until.isoformat()}{last}"
    return None


def _usable_note(health: ProfileHealth) -> str:
    if health is ProfileHealth.EXPIRED:
        return "; token expired, refreshed before use"
    if health is ProfileHealth.EXPIRING:
        return "; token expiring soon, refreshed before use"
    return ""
