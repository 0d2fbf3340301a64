"""What is wrong with each profile, how bad it is, and the exact command that fixes it (pure).

The registry feeds in which vault refs exist (metadata only, nothing is decrypted), so the
doctor can report missing secrets and secrets left behind by a crashed connect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from palyra.auth.policy import (
    connect_command,
    effective_health,
    is_refresh_category,
    oauth_expiry,
    refresh_command,
)
from palyra.auth.records import AuthProfileRecord, OAuthRefs, ProfileHealth
from palyra.vault import VaultRef


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``code`` is stable for scripts, ``hint`` is a command to run."""

    profile_id: str
    code: str
    severity: Severity
    message: str
    hint: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(record: AuthProfileRecord, present: set[VaultRef], now: datetime) -> list[Finding]:
    """Every finding for one profile; an empty list means healthy."""
    pid = record.profile_id
    reconnect = connect_command(record)
    findings: list[Finding] = []

    def add(code: str, severity: Severity, message: str, hint: str) -> None:
        findings.append(Finding(pid, code, severity, f"profile {pid}: {message}", hint))

    for ref in record.secret_refs():
        if ref not in present:
            add(
                "missing_secret",
                Severity.ERROR,
                f"its secret {ref} is not in the vault, so the profile cannot be used",
                reconnect,
            )
    health = effective_health(record, now)
    oauth = isinstance(record.credential, OAuthRefs)
    if health is ProfileHealth.NEEDS_REAUTH:
        add(
            "needs_reauth",
            Severity.ERROR,
            f"the provider rejected the credential ({record.last_error_category or 'unknown'}); "
            "it is not used until it is reconnected",
            reconnect,
        )
    elif is_refresh_category(record.last_error_category):
        add(
            "refresh_failing",
            Severity.WARNING,
            f"the last token refresh failed ({record.last_error_category}); it is retried "
            "with backoff",
            f"{refresh_command(record)}  (if that fails: {reconnect})",
        )
    if health is ProfileHealth.COOLING_DOWN:
        assert record.cooling_down_until is not None
        add(
            "cooling_down",
            Severity.WARNING,
            f"cooling down until {record.cooling_down_until.isoformat()} after "
            f"{record.last_error_category or 'a failure'}; other profiles serve meanwhile",
            f"palyra auth profiles cooldown-clear {pid}",
        )
    if health is ProfileHealth.EXPIRED:
        expires = oauth_expiry(record)
        when = f" at {expires.isoformat()}" if expires else ""
        fix = refresh_command(record) if oauth else reconnect
        add("expired", Severity.ERROR, f"the access token expired{when}", fix)
    elif health is ProfileHealth.EXPIRING:
        expires = oauth_expiry(record)
        assert expires is not None
        add(
            "expiring",
            Severity.INFO,
            f"the access token expires at {expires.isoformat()}; it is refreshed before use",
            refresh_command(record),
        )
    return findings


def orphan_findings(
    present: Iterable[VaultRef], profile_ids: set[str], profile_scope_prefix: str = "profile:"
) -> list[Finding]:
    """Profile secrets whose profile does not exist (a connect that crashed half-way)."""
    findings: list[Finding] = []
    for ref in sorted(present):
        if not ref.scope.startswith(profile_scope_prefix):
            continue
        pid = ref.scope[len(profile_scope_prefix) :]
        if pid in profile_ids:
            continue
        findings.append(
            Finding(
                pid,
                "orphan_secret",
                Severity.WARNING,
                f"vault secret {ref} belongs to no profile (left by an interrupted connect)",
                f"palyra vault delete {ref}",
            )
        )
    return findings
