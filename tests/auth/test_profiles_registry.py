"""AuthProfileRegistry on real SQLite (and PostgreSQL when configured), on a manual wall clock."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from palyra.auth import (
    ApiKeyRefs,
    AuthProfileRecord,
    AuthProfileRegistry,
    OAuthRefs,
    ProfileConflict,
    ProfileError,
    ProfileHealth,
    ProfileNotFound,
    secret_ref,
)
from palyra.auth.records import normalize_profile_id
from palyra.model import ErrorEnvelope, FailureClass
from palyra.store import Store
from palyra.vault import KeyResolver, Vault

T0 = 1_800_000_000.0


class WallClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def registry(
    store: Store, tmp_path: Path, clock: WallClock
) -> AsyncIterator[AuthProfileRegistry]:
    keys = KeyResolver(
        tmp_path, environ={"PALYRA_VAULT_KEY": base64.b64encode(os.urandom(32)).decode()}
    )
    vault = await Vault.open(store, keys, clock=clock)
    yield AuthProfileRegistry(store, vault, clock)


def api_key_record(
    registry: AuthProfileRegistry, pid: str, provider: str = "openai", scope: str = "global"
) -> AuthProfileRecord:
    now = registry.now()
    return AuthProfileRecord(
        profile_id=pid,
        provider=provider,  # type: ignore[arg-type]
        display_name=f"Profile {pid}",
        scope=scope,
        credential=ApiKeyRefs(api_key_ref=str(secret_ref(pid.lower(), "api_key"))),
        base_url="https://api.openai.com/v1",
        created_at=now,
        updated_at=now,
    )


async def connect(registry: AuthProfileRegistry, pid: str, **kw: str) -> AuthProfileRecord:
    record = await registry.create(api_key_record(registry, pid, **kw))
    await registry.vault.put(secret_ref(record.profile_id, "api_key"), f"sk-test-{pid}-0123456789")
    return record


def envelope(fc: FailureClass, retry_after_s: float | None = None) -> ErrorEnvelope:
    return ErrorEnvelope.of(fc, "upstream said no", retry_after_s=retry_after_s)


# --- records ---
def test_profile_ids_are_lowercased_and_checked(registry: AuthProfileRegistry) -> None:
    assert api_key_record(registry, "OpenAI.Main_1").profile_id == "openai.main_1"
    with pytest.raises(ProfileError, match="must be 1-128 characters of a-z 0-9"):
        normalize_profile_id("bad id!")
    with pytest.raises(ProfileError, match="'global' or 'agent:<id>'"):
        api_key_record(registry, "ok", scope="team:x")


def test_a_record_cannot_point_at_another_profiles_secret(registry: AuthProfileRegistry) -> None:
    now = registry.now()
    with pytest.raises(ValueError, match="outside the profile's own scope profile:mine"):
        AuthProfileRecord(
            profile_id="mine",
            provider="openai",
            display_name="x",
            credential=ApiKeyRefs(api_key_ref="global/openai"),
            created_at=now,
            updated_at=now,
        )


def test_last_error_category_refuses_provider_text(registry: AuthProfileRegistry) -> None:
    fields = api_key_record(registry, "p").model_dump()
    with pytest.raises(ValueError, match="never stored here"):
        AuthProfileRecord.model_validate({**fields, "last_error_category": "key sk-abc is bad"})
    ok = AuthProfileRecord.model_validate({**fields, "last_error_category": "refresh:timeout"})
    assert ok.last_error_category == "refresh:timeout"


# --- CRUD, paging, versions ---
async def test_create_get_update_round_trip_with_versions(
    registry: AuthProfileRegistry, clock: WallClock
) -> None:
    created = await registry.create(api_key_record(registry, "openai-main"))
    assert created.version == 1 and created.order == 0
    assert await registry.get("OPENAI-MAIN") == created
    clock.advance(5)
    updated = await registry.update(
        created.model_copy(update={"display_name": "Renamed"}), expected_version=1
    )
    assert (updated.version, updated.display_name) == (2, "Renamed")
    assert updated.created_at == created.created_at
    assert updated.updated_at == created.updated_at + timedelta(seconds=5)
    assert await registry.get("openai-main") == updated


async def test_stale_update_is_a_conflict_and_changes_nothing(
    registry: AuthProfileRegistry,
) -> None:
    created = await registry.create(api_key_record(registry, "p1"))
    await registry.update(created.model_copy(update={"display_name": "first"}), expected_version=1)
    with pytest.raises(ProfileConflict, match=r"changed since it was read .*version 2.*expected 1"):
        await registry.update(
            created.model_copy(update={"display_name": "second"}), expected_version=1
        )
    assert (await registry.get("p1")).display_name == "first"


async def test_duplicate_create_and_missing_profile_errors(registry: AuthProfileRegistry) -> None:
    await registry.create(api_key_record(registry, "dup"))
    with pytest.raises(ProfileConflict, match=r"already exists; .*palyra auth profiles delete dup"):
        await registry.create(api_key_record(registry, "dup"))
    with pytest.raises(ProfileNotFound, match="no auth profile 'ghost'; see: palyra auth profiles"):
        await registry.get("ghost")
    with pytest.raises(ProfileNotFound):
        await registry.update(api_key_record(registry, "ghost"), expected_version=1)


async def test_list_pages_with_cursor_and_filters(registry: AuthProfileRegistry) -> None:
    for i in range(5):
        await registry.create(api_key_record(registry, f"o{i}"))
    await registry.create(api_key_record(registry, "a1", provider="anthropic"))
    await registry.create(api_key_record(registry, "ops1", scope="agent:ops"))
    await registry.create(api_key_record(registry, "dev1", scope="agent:dev"))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await registry.list(limit=3, cursor=cursor)
        seen += [r.profile_id for r in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(["o0", "o1", "o2", "o3", "o4", "a1", "ops1", "dev1"])
    assert pages == 3
    anthropic = await registry.list(provider="anthropic")
    assert [r.profile_id for r in anthropic.items] == ["a1"]
    ops = await registry.list(agent_id="ops", provider="openai")
    assert [r.profile_id for r in ops.items] == ["o0", "o1", "o2", "o3", "o4", "ops1"]
    scoped = await registry.list(scope="agent:dev")
    assert [r.profile_id for r in scoped.items] == ["dev1"]
    with pytest.raises(ProfileError, match="between 1 and 500"):
        await registry.list(limit=0)
    with pytest.raises(ProfileError, match="unknown provider 'gemini'"):
        await registry.list(provider="gemini")


# --- delete ---
async def test_delete_removes_the_vault_secrets_too(registry: AuthProfileRegistry) -> None:
    await connect(registry, "gone")
    await connect(registry, "kept")
    assert await registry.delete("gone") is True
    assert await registry.find("gone") is None
    assert [str(m.ref) for m in await registry.vault.list()] == ["profile:kept/api_key"]
    assert await registry.delete("gone") is False


async def test_crash_between_secret_and_record_delete_leaves_no_orphan_secret(
    registry: AuthProfileRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    await connect(registry, "half")

    real_delete = registry.vault.delete

    async def delete_then_crash(ref: object) -> bool:
        deleted = await real_delete(ref)  # type: ignore[arg-type]
        # The record delete comes next: make the store die exactly there.
        monkeypatch.setattr(registry.store, "begin", _Crashing)
        return deleted

    monkeypatch.setattr(registry.vault, "delete", delete_then_crash)
    with pytest.raises(RuntimeError, match="process died"):
        await registry.delete("half")
    monkeypatch.undo()

    assert await registry.vault.list() == []  # no secret readable under any profile
    assert await registry.find("half") is not None
    findings = await registry.doctor()
    assert [(f.code, f.hint) for f in findings] == [
        ("missing_secret", "palyra auth openai api-key --profile half")
    ]
    assert await registry.delete("half") is True


class _Crashing:
    """A ``store.begin()`` stand-in that fails on entry, like a crash before the commit."""

    async def __aenter__(self) -> object:
        raise RuntimeError("process died here")

    async def __aexit__(self, *exc: object) -> None:
        return None


# --- order and selection ---
async def test_set_order_puts_listed_profiles_first(registry: AuthProfileRegistry) -> None:
    for pid in ("a", "b", "c", "d"):
        await registry.create(api_key_record(registry, pid))
    ordered = await registry.set_order("openai", ["c", "a"])
    assert [(r.profile_id, r.order) for r in ordered] == [("c", 0), ("a", 1), ("b", 2), ("d", 3)]
    assert (await registry.explain_selection("openai")).usable_ids() == ["c", "a", "b", "d"]
    with pytest.raises(ProfileError, match="cannot order zz: not a openai profile in scope global"):
        await registry.set_order("openai", ["zz"])
    with pytest.raises(ProfileError, match="listed twice: a"):
        await registry.set_order("openai", ["a", "a"])


async def test_agent_scoped_profiles_outrank_global_ones_for_that_agent(
    registry: AuthProfileRegistry,
) -> None:
    await registry.create(api_key_record(registry, "global-1"))
    await registry.create(api_key_record(registry, "ops-own", scope="agent:ops"))
    await registry.create(api_key_record(registry, "dev-own", scope="agent:dev"))

    for_ops = await registry.explain_selection("openai", "ops")
    assert for_ops.chosen == "ops-own"
    reasons = {c.profile_id: c.reason for c in for_ops.candidates}
    assert reasons["ops-own"].startswith("chosen: first usable profile by rank (agent scope")
    assert reasons["global-1"].startswith("usable, ranked after ops-own (global scope")
    assert reasons["dev-own"] == "scoped to agent:dev, not agent:ops"

    for_none = await registry.explain_selection("openai")
    assert for_none.chosen == "global-1"
    assert {c.profile_id for c in for_none.candidates if not c.usable} == {"ops-own", "dev-own"}
    assert "pass --agent ops to use it" in next(
        c.reason for c in for_none.candidates if c.profile_id == "ops-own"
    )


async def test_selection_skips_cooling_and_reauth_profiles_with_reasons(
    registry: AuthProfileRegistry, clock: WallClock
) -> None:
    for pid in ("first", "second", "third"):
        await registry.create(api_key_record(registry, pid))
    await registry.record_failure("first", envelope(FailureClass.RATE_LIMITED))
    await registry.record_failure("second", envelope(FailureClass.AUTH_INVALID))
    await registry.record_failure("second", envelope(FailureClass.AUTH_INVALID))

    selection = await registry.explain_selection("openai")
    assert selection.chosen == "third"
    reasons = {c.profile_id: c.reason for c in selection.candidates}
    assert reasons["first"].startswith("cooling down until 2027-01-15T08:01:00")
    assert "after rate_limited" in reasons["first"]
    assert reasons["second"].startswith("needs re-auth after auth_invalid")

    clock.advance(61)
    assert (await registry.explain_selection("openai")).chosen == "first"


# --- failure policy, cooldown, success ---
async def test_failure_policy_table(registry: AuthProfileRegistry, clock: WallClock) -> None:
    await registry.create(api_key_record(registry, "p"))
    now = registry.now()

    rate = await registry.record_failure("p", envelope(FailureClass.RATE_LIMITED, 5))
    assert rate is not None
    assert (rate.health, rate.cooling_down_until) == (
        ProfileHealth.COOLING_DOWN,
        now + timedelta(seconds=60),
    )
    long_wait = await registry.record_failure("p", envelope(FailureClass.RATE_LIMITED, 600))
    assert long_wait is not None and long_wait.cooling_down_until == now + timedelta(seconds=600)
    quota = await registry.record_failure("p", envelope(FailureClass.QUOTA_EXHAUSTED))
    assert quota is not None and quota.cooling_down_until == now + timedelta(minutes=30)
    assert quota.last_error_category == "quota_exhausted"

    await registry.clear_cooldown("p")
    first = await registry.record_failure("p", envelope(FailureClass.AUTH_INVALID))
    assert first is not None and first.health is ProfileHealth.COOLING_DOWN
    second = await registry.record_failure("p", envelope(FailureClass.PERMISSION_DENIED))
    assert second is not None and second.health is ProfileHealth.NEEDS_REAUTH
    clock.advance(3600)
    assert (await registry.get("p")).health is ProfileHealth.NEEDS_REAUTH  # sticky

    unchanged = await registry.record_failure("p", envelope(FailureClass.TIMEOUT))
    assert unchanged == await registry.get("p")
    assert await registry.record_failure("ghost", envelope(FailureClass.AUTH_INVALID)) is None


async def test_auth_expired_expires_oauth_but_needs_reauth_for_api_keys(
    registry: AuthProfileRegistry,
) -> None:
    await registry.create(api_key_record(registry, "key"))
    await registry.create(oauth_record(registry, "oauth", expires_in_s=3600))
    key = await registry.record_failure("key", envelope(FailureClass.AUTH_EXPIRED))
    oauth = await registry.record_failure("oauth", envelope(FailureClass.AUTH_EXPIRED))
    assert key is not None and key.health is ProfileHealth.NEEDS_REAUTH
    assert oauth is not None and oauth.health is ProfileHealth.EXPIRED


async def test_cooldown_clear_and_success_make_a_profile_usable_again(
    registry: AuthProfileRegistry, clock: WallClock
) -> None:
    await registry.create(api_key_record(registry, "p"))
    await registry.record_failure("p", envelope(FailureClass.QUOTA_EXHAUSTED))
    cleared = await registry.clear_cooldown("p")
    assert (cleared.health, cleared.cooling_down_until, cleared.failure_count) == (
        ProfileHealth.OK,
        None,
        0,
    )
    assert cleared.version == 1  # usage state never bumps the version
    with pytest.raises(ProfileNotFound):
        await registry.clear_cooldown("ghost")

    await registry.record_failure("p", envelope(FailureClass.AUTH_INVALID))
    await registry.record_success("p")
    healed = await registry.get("p")
    assert (healed.health, healed.failure_count, healed.last_used_at) == (
        ProfileHealth.OK,
        0,
        registry.now(),
    )
    clock.advance(10)
    await registry.record_success("p")  # within the minute: nothing written
    assert (await registry.get("p")).last_used_at == healed.last_used_at
    clock.advance(60)
    await registry.record_success("p")
    assert (await registry.get("p")).last_used_at == registry.now()


# --- doctor ---
def oauth_record(
    registry: AuthProfileRegistry, pid: str, *, expires_in_s: float
) -> AuthProfileRecord:
    now = registry.now()
    return AuthProfileRecord(
        profile_id=pid,
        provider="openai",
        display_name="OAuth",
        credential=OAuthRefs(
            access_token_ref=str(secret_ref(pid, "access_token")),
            refresh_token_ref=str(secret_ref(pid, "refresh_token")),
            token_endpoint="https://auth.openai.com/oauth/token",
            client_id="app",
            expires_at=now + timedelta(seconds=expires_in_s),
        ),
        created_at=now,
        updated_at=now,
    )


async def test_doctor_names_each_broken_state_and_its_fix(
    registry: AuthProfileRegistry,
) -> None:
    await connect(registry, "healthy")
    await registry.create(api_key_record(registry, "no-secret", scope="agent:ops"))
    await connect(registry, "cooling")
    await registry.record_failure("cooling", envelope(FailureClass.RATE_LIMITED))
    await connect(registry, "rejected")
    await registry.record_failure("rejected", envelope(FailureClass.AUTH_INVALID))
    await registry.record_failure("rejected", envelope(FailureClass.AUTH_INVALID))
    await registry.create(oauth_record(registry, "old-token", expires_in_s=-10))
    for name in ("access_token", "refresh_token"):
        await registry.vault.put(secret_ref("old-token", name), f"tok-{name}-abcdef")
    await registry.create(oauth_record(registry, "refresh-broken", expires_in_s=3600))
    for name in ("access_token", "refresh_token"):
        await registry.vault.put(secret_ref("refresh-broken", name), f"tok-{name}-987654")
    await registry.record_failure(
        "refresh-broken", envelope(FailureClass.UPSTREAM_UNAVAILABLE), during_refresh=True
    )
    await registry.vault.put(secret_ref("orphan", "api_key"), "sk-left-behind-123456")

    found = {(f.profile_id, f.code): f for f in await registry.doctor()}
    assert set(found) == {
        ("no-secret", "missing_secret"),
        ("cooling", "cooling_down"),
        ("rejected", "needs_reauth"),
        ("old-token", "expired"),
        ("refresh-broken", "refresh_failing"),
        ("refresh-broken", "cooling_down"),
        ("orphan", "orphan_secret"),
    }
    hints = {key: f.hint for key, f in found.items()}
    assert hints[("no-secret", "missing_secret")] == (
        "palyra auth openai api-key --profile no-secret --agent ops"
    )
    assert hints[("cooling", "cooling_down")] == "palyra auth profiles cooldown-clear cooling"
    assert hints[("rejected", "needs_reauth")] == "palyra auth openai api-key --profile rejected"
    assert hints[("old-token", "expired")] == "palyra auth openai refresh old-token"
    assert hints[("refresh-broken", "refresh_failing")].startswith(
        "palyra auth openai refresh refresh-broken  (if that fails: palyra auth openai login"
    )
    assert hints[("orphan", "orphan_secret")] == "palyra vault delete profile:orphan/api_key"
    assert found[("no-secret", "missing_secret")].severity == "error"
    assert found[("cooling", "cooling_down")].severity == "warning"
    assert (
        "profile:no-secret/api_key is not in the vault"
        in found[("no-secret", "missing_secret")].message
    )

    only_ops = await registry.doctor(agent_id="ops")
    assert ("no-secret", "missing_secret") in {(f.profile_id, f.code) for f in only_ops}
    assert "orphan" not in {f.profile_id for f in only_ops}
