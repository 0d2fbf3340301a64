"""Save the tokens of a finished OpenAI sign-in as an OAuth auth profile."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from palyra.auth.oauth_tokens import TokenSet, parse_id_token_claims
from palyra.auth.records import (
    AuthProfileRecord,
    OAuthRefs,
    ProfileConflict,
    ProfileError,
    ProfileHealth,
    normalize_profile_id,
    secret_ref,
)
from palyra.auth.registry import AuthProfileRegistry
from palyra.vault import Vault

DEFAULT_OAUTH_PROFILE_ID = "openai-oauth"

WallClock = Callable[[], float]


def expiry(expires_in: int | None, now: float) -> datetime | None:
    """When an access token granted at ``now`` stops working (``None``: the grant did not say)."""
    if expires_in is None or expires_in <= 0:
        return None
    return datetime.fromtimestamp(now, tz=UTC) + timedelta(seconds=expires_in)


async def persist_openai_auth_profile(
    registry: AuthProfileRegistry,
    vault: Vault,
    *,
    tokens: TokenSet,
    profile_id: str | None,
    token_endpoint: str,
    client_id: str,
    scopes: str,
    clock: WallClock,
) -> AuthProfileRecord:
    """Tokens into the vault, then the record into the registry (new, or the same profile
    signed in again). The id token's email and account id are kept for display only."""
    pid = normalize_profile_id(profile_id or DEFAULT_OAUTH_PROFILE_ID)
    if tokens.refresh_token is None:
        raise ProfileError(
            f"profile {pid}: the sign-in returned no refresh token; nothing was saved"
        )
    existing = await registry.find(pid)
    if existing is not None and not isinstance(existing.credential, OAuthRefs):
        raise ProfileError(
            f"profile {pid} already exists as a {existing.provider} "
            f"{existing.credential_kind} profile; sign in with another --profile, or delete it "
            f"first with: palyra auth profiles delete {pid}"
        )
    claims = parse_id_token_claims(tokens.id_token)
    access_ref = secret_ref(pid, "access_token")
    refresh_ref = secret_ref(pid, "refresh_token")
    credential = OAuthRefs(
        access_token_ref=str(access_ref),
        refresh_token_ref=str(refresh_ref),
        token_endpoint=token_endpoint,
        client_id=client_id,
        scopes=tuple(scopes.split()),
        expires_at=expiry(tokens.expires_in, clock()),
        account_id=claims.account_id,
        email=claims.email,
    )
    await vault.put(refresh_ref, tokens.refresh_token)
    await vault.put(access_ref, tokens.access_token)
    if existing is not None:
        return await _replace(registry, existing, credential)
    now = registry.now()
    shown = claims.email or pid
    record = AuthProfileRecord(
        profile_id=pid,
        provider="openai",
        display_name=f"OpenAI ({shown})",
        credential=credential,
        created_at=now,
        updated_at=now,
    )
    try:
        return await registry.create(record)
    except ProfileConflict:
        # A parallel sign-in created it first; ours replaces its tokens, as a re-login would.
        return await _replace(registry, await registry.get(pid), credential)
    except BaseException:
        await vault.delete(refresh_ref)
        await vault.delete(access_ref)
        raise


async def _replace(
    registry: AuthProfileRegistry, existing: AuthProfileRecord, credential: OAuthRefs
) -> AuthProfileRecord:
    changed = existing.model_copy(
        update={
            "credential": credential,
            "health": ProfileHealth.OK,
            "cooling_down_until": None,
            "last_error_category": None,
            "failure_count": 0,
        }
    )
    return await registry.update(changed, expected_version=existing.version)
