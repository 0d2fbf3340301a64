"""``AuthProfileRecord``: one named credential for one provider, holding vault refs only.

A profile's secrets live in the vault under the scope ``profile:<id>`` (names ``api_key``,
``access_token``, ``refresh_token``); the record may point nowhere else, so deleting a profile
knows exactly which secrets to remove and a record can never be aimed at another secret.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palyra.model import FailureClass, PalyraError
from palyra.vault import InvalidVaultRef, VaultRef

ProfileProvider = Literal["openai", "anthropic", "openai_compatible"]
PROVIDERS: tuple[ProfileProvider, ...] = ("openai", "anthropic", "openai_compatible")
SecretName = Literal["api_key", "access_token", "refresh_token"]
SECRET_NAMES: tuple[SecretName, ...] = ("api_key", "access_token", "refresh_token")

PROFILE_ID_PATTERN = re.compile(r"^[a-z0-9._-]{1,128}$")
MAX_DISPLAY_NAME = 256
GLOBAL_SCOPE = "global"
_AGENT_PREFIX = "agent:"


class ProfileError(PalyraError):
    """A profile value or operation is wrong; the message names the profile and the fix."""

    failure = FailureClass.INVALID_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(PalyraError.of(self.failure, message).envelope)


class ProfileNotFound(ProfileError):
    failure = FailureClass.NOT_FOUND


class ProfileConflict(ProfileError):
    """A write lost a race: the record changed since the caller read it (or already exists)."""


class ProfileHealth(StrEnum):
    """How usable a profile is. ``expiring`` is only ever computed (from ``expires_at``)."""

    OK = "ok"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    NEEDS_REAUTH = "needs_reauth"
    COOLING_DOWN = "cooling_down"


def normalize_profile_id(text: str) -> str:
    """Trimmed and lowercased; 1-128 characters of ``a-z 0-9 . _ -``."""
    value = text.strip().lower()
    if not PROFILE_ID_PATTERN.match(value):
        raise ProfileError(
            f"profile id {text!r} must be 1-128 characters of a-z 0-9 . _ - "
            "(e.g. openai-default, anthropic.team)"
        )
    return value


def normalize_scope(text: str) -> str:
    """``global`` or ``agent:<id>`` with the agent id normalized like a profile id."""
    value = text.strip()
    if value.lower() == GLOBAL_SCOPE:
        return GLOBAL_SCOPE
    if value.lower().startswith(_AGENT_PREFIX):
        agent = value[len(_AGENT_PREFIX) :]
        try:
            return _AGENT_PREFIX + normalize_profile_id(agent)
        except ProfileError:
            pass
    raise ProfileError(
        f"profile scope {text!r} must be 'global' or 'agent:<id>' with an agent id of "
        "a-z 0-9 . _ - (e.g. agent:ops)"
    )


def agent_scope(agent_id: str) -> str:
    return normalize_scope(_AGENT_PREFIX + agent_id)


def secret_scope(profile_id: str) -> str:
    """The vault scope holding a profile's secrets."""
    return f"profile:{profile_id}"


def secret_ref(profile_id: str, name: SecretName) -> VaultRef:
    """Where a profile's secret of this kind lives in the vault."""
    return VaultRef(secret_scope(profile_id), name)


class ApiKeyRefs(BaseModel):
    """An API key credential: a vault ref to the key, nothing else."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["api_key"] = "api_key"
    api_key_ref: str

    def refs(self) -> list[str]:
        return [self.api_key_ref]


class OAuthRefs(BaseModel):
    """An OAuth credential: vault refs to both tokens plus what a refresh needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["oauth"] = "oauth"
    access_token_ref: str
    refresh_token_ref: str
    token_endpoint: str
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None
    account_id: str | None = None
    email: str | None = None

    def refs(self) -> list[str]:
        return [self.access_token_ref, self.refresh_token_ref]


CredentialRefs = Annotated[ApiKeyRefs | OAuthRefs, Field(discriminator="kind")]


class AuthProfileRecord(BaseModel):
    """One profile as stored. ``version`` grows on every ``update`` (optimistic concurrency);
    usage feedback (health, cooldown, last use) changes the record without bumping it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_id: str
    provider: ProfileProvider
    display_name: str
    scope: str = GLOBAL_SCOPE
    credential: CredentialRefs
    base_url: str | None = None
    health: ProfileHealth = ProfileHealth.OK
    cooling_down_until: datetime | None = None
    last_error_category: str | None = None
    failure_count: int = Field(default=0, ge=0)
    order: int = 0
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None
    version: int = Field(default=1, ge=1)

    @field_validator("profile_id")
    @classmethod
    def _profile_id(cls, value: str) -> str:
        return normalize_profile_id(value)

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        return normalize_scope(value)

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str) -> str:
        value = value.strip()
        if not 1 <= len(value) <= MAX_DISPLAY_NAME:
            raise ValueError(f"display_name must be 1-{MAX_DISPLAY_NAME} characters")
        return value

    @field_validator("last_error_category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        if value is not None and not is_error_category(value):
            raise ValueError(
                f"last_error_category {value!r} is not a failure class; provider text is "
                "never stored here"
            )
        return value

    @model_validator(mode="after")
    def _refs_in_own_scope(self) -> AuthProfileRecord:
        own = secret_scope(self.profile_id)
        for text in self.credential.refs():
            try:
                ref = VaultRef.parse(text)
            except InvalidVaultRef as exc:
                raise ValueError(exc.envelope.message) from exc
            if ref.scope != own:
                raise ValueError(
                    f"profile {self.profile_id}: vault ref {text} is outside the profile's own "
                    f"scope {own}; store the secret at {own}/<name>"
                )
        return self

    @property
    def agent_id(self) -> str | None:
        """The agent this profile belongs to, or ``None`` for a global profile."""
        return self.scope[len(_AGENT_PREFIX) :] if self.scope != GLOBAL_SCOPE else None

    @property
    def credential_kind(self) -> Literal["api_key", "oauth"]:
        return self.credential.kind

    def secret_refs(self) -> list[VaultRef]:
        return [VaultRef.parse(text) for text in self.credential.refs()]

    def public_dict(self) -> dict[str, object]:
        """JSON-ready view for CLI and console output (refs only; there are no secrets)."""
        return self.model_dump(mode="json")


REFRESH_CATEGORY_PREFIX = "refresh:"
_CLASSES = frozenset(c.value for c in FailureClass)


def is_error_category(value: str) -> bool:
    """A failure class value, optionally prefixed ``refresh:`` (failed while refreshing)."""
    return value.removeprefix(REFRESH_CATEGORY_PREFIX) in _CLASSES


def error_category(failure_class: FailureClass, *, during_refresh: bool = False) -> str:
    return (REFRESH_CATEGORY_PREFIX if during_refresh else "") + failure_class.value


__all__ = [
    "GLOBAL_SCOPE",
    "PROFILE_ID_PATTERN",
    "PROVIDERS",
    "SECRET_NAMES",
    "ApiKeyRefs",
    "AuthProfileRecord",
    "CredentialRefs",
    "OAuthRefs",
    "ProfileConflict",
    "ProfileError",
    "ProfileHealth",
    "ProfileNotFound",
    "ProfileProvider",
    "SecretName",
    "agent_scope",
    "error_category",
    "normalize_profile_id",
    "normalize_scope",
    "secret_ref",
    "secret_scope",
]
