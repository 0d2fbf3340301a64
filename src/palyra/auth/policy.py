"""Pure rules on profile records: effective health, what a failure does, and remediation commands.

Failure policy (the registry applies it in ``record_failure``):

* ``auth_invalid`` / ``permission_denied``: the first rejection cools the profile down for
  5 minutes (a provider hiccup or a key being rotated gets one more chance, and routing moves to
  the next profile at once); a second consecutive rejection marks it ``needs_reauth``, which is
  sticky until the key is reconnected or the cooldown is cleared by hand.
* ``rate_limited``: cooling down for 60 s, or the provider's Retry-After when longer (capped at
  30 min). ``quota_exhausted``: cooling down for 30 min.
* ``auth_expired``: an OAuth profile becomes ``expired`` (refreshed before next use); an API key
  cannot expire, so it becomes ``needs_reauth``.
* During an OAuth refresh: a rejected refresh token (``auth_invalid``/``permission_denied``/
  ``auth_expired``) means ``needs_reauth`` at once; anything else backs off 15 s, 30 s, 60 s ...
  up to 5 min.
* Anything else (timeouts, 5xx, bad requests) is not the credential's fault and changes nothing;
  the router's breakers deal with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from palyra.auth.records import (
    REFRESH_CATEGORY_PREFIX,
    AuthProfileRecord,
    OAuthRefs,
    ProfileHealth,
    error_category,
)
from palyra.model import ErrorEnvelope, FailureClass

EXPIRING_WINDOW = timedelta(minutes=5)
AUTH_REJECT_COOLDOWN = timedelta(minutes=5)
NEEDS_REAUTH_AFTER = 2
RATE_LIMIT_COOLDOWN = timedelta(seconds=60)
QUOTA_COOLDOWN = timedelta(minutes=30)
MAX_COOLDOWN = timedelta(minutes=30)
REFRESH_BACKOFF_BASE = timedelta(seconds=15)
REFRESH_BACKOFF_MAX = timedelta(minutes=5)
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}

_REJECTED = frozenset({FailureClass.AUTH_INVALID, FailureClass.PERMISSION_DENIED})


def effective_health(record: AuthProfileRecord, now: datetime) -> ProfileHealth:
    """The health that holds at ``now``: a past cooldown is over, an OAuth expiry is computed."""
    if record.health is ProfileHealth.NEEDS_REAUTH:
        return ProfileHealth.NEEDS_REAUTH
    if (
        record.health is ProfileHealth.COOLING_DOWN
        and record.cooling_down_until is not None
        and record.cooling_down_until > now
    ):
        return ProfileHealth.COOLING_DOWN
    if record.health is ProfileHealth.EXPIRED:
        return ProfileHealth.EXPIRED
    expires_at = oauth_expiry(record)
    if expires_at is not None:
        if expires_at <= now:
            return ProfileHealth.EXPIRED
        if expires_at <= now + EXPIRING_WINDOW:
            return ProfileHealth.EXPIRING
    return ProfileHealth.OK


def oauth_expiry(record: AuthProfileRecord) -> datetime | None:
    cred = record.credential
    return cred.expires_at if isinstance(cred, OAuthRefs) else None


@dataclass(frozen=True, slots=True)
class FailureEffect:
    """What a failure changes on a record (``None`` from :func:`failure_effect`: nothing)."""

    health: ProfileHealth
    cooling_down_until: datetime | None
    last_error_category: str
    failure_count: int


def failure_effect(
    record: AuthProfileRecord, envelope: ErrorEnvelope, now: datetime, *, during_refresh: bool
) -> FailureEffect | None:
    """Apply the module's failure policy to one failure (pure)."""
    fc = envelope.failure_class
    count = record.failure_count + 1
    category = error_category(fc, during_refresh=during_refresh)

    def cooling(span: timedelta) -> FailureEffect:
        return FailureEffect(ProfileHealth.COOLING_DOWN, now + span, category, count)

    def reauth() -> FailureEffect:
        return FailureEffect(ProfileHealth.NEEDS_REAUTH, None, category, count)

    if during_refresh:
        if fc in _REJECTED or fc is FailureClass.AUTH_EXPIRED:
            return reauth()
        backoff = REFRESH_BACKOFF_BASE * (2 ** min(count - 1, 10))
        return cooling(min(backoff, REFRESH_BACKOFF_MAX))
    if fc in _REJECTED:
        return reauth() if count >= NEEDS_REAUTH_AFTER else cooling(AUTH_REJECT_COOLDOWN)
    if fc is FailureClass.RATE_LIMITED:
        wait = timedelta(seconds=envelope.retry_after_s or 0)
        return cooling(min(max(RATE_LIMIT_COOLDOWN, wait), MAX_COOLDOWN))
    if fc is FailureClass.QUOTA_EXHAUSTED:
        return cooling(QUOTA_COOLDOWN)
    if fc is FailureClass.AUTH_EXPIRED:
        if isinstance(record.credential, OAuthRefs):
            return FailureEffect(ProfileHealth.EXPIRED, None, category, count)
        return reauth()
    return None


def connect_command(record: AuthProfileRecord) -> str:
    """The exact command that (re)connects this profile's credential."""
    agent = f" --agent {record.agent_id}" if record.agent_id else ""
    if isinstance(record.credential, OAuthRefs):
        return f"palyra auth openai login --profile {record.profile_id}{agent}"
    family = "anthropic" if record.provider == "anthropic" else "openai"
    flags = f" --profile {record.profile_id}"
    if record.provider == "openai_compatible":
        flags += " --compatible"
    if record.base_url and record.base_url != DEFAULT_BASE_URLS.get(record.provider):
        flags += f" --base-url {record.base_url}"
    return f"palyra auth {family} api-key{flags}{agent}"


def refresh_command(record: AuthProfileRecord) -> str:
    return f"palyra auth openai refresh {record.profile_id}"


def is_refresh_category(category: str | None) -> bool:
    return category is not None and category.startswith(REFRESH_CATEGORY_PREFIX)
