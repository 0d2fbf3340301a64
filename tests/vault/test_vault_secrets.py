"""Vault on a real store (SQLite file and PostgreSQL): round trips, tampering, keys, rotation."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from vault_helpers import CHEAP_ARGON2, new_key_b64, plaintext_hits, resolver

from palyra.store import Store, open_store
from palyra.vault import (
    EnvKey,
    KeyFile,
    Passphrase,
    SecretNotFound,
    Vault,
    VaultError,
    VaultIntegrityError,
    VaultKeyError,
    VaultRef,
)
from palyra.vault.tables import vault_secrets

SECRET_A = "sk-test-alpha-7f3a9c1e2b4d"
SECRET_B = "sk-test-bravo-0c8e6a4f2d1b"
SECRET_A2 = "sk-test-alpha-second-91e2"

_SEALED = ("key_id", "dek_nonce", "wrapped_dek", "nonce", "ciphertext")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def _row(store: Store, ref: str) -> dict[str, object]:
    r = VaultRef.parse(ref)
    async with store.connect() as conn:
        row = (
            await conn.execute(
                sa.select(vault_secrets).where(
                    vault_secrets.c.scope == r.scope, vault_secrets.c.name == r.name
                )
            )
        ).one()
    return dict(row._mapping)


async def _overwrite(store: Store, ref: str, values: dict[str, object]) -> None:
    r = VaultRef.parse(ref)
    async with store.begin() as conn:
        await conn.execute(
            sa.update(vault_secrets)
            .where(vault_secrets.c.scope == r.scope, vault_secrets.c.name == r.name)
            .values(**values)
        )


async def test_put_get_round_trip_and_versions_and_metadata(store: Store, tmp_path: Path) -> None:
    clock = FakeClock()
    vault = await Vault.open(store, resolver(tmp_path), clock=clock)
    meta = await vault.put("global/openai", SECRET_A)
    assert meta.version == 1
    clock.now += 60
    meta2 = await vault.put("vault:global/openai", SECRET_A2)
    await vault.put("agent:ops/key", SECRET_B)
    assert (meta2.version, meta2.created_at, meta2.updated_at.timestamp()) == (
        2,
        meta.created_at,
        clock.now,
    )
    assert await vault.get("global/openai") == SECRET_A2
    assert await vault.get(VaultRef("agent:ops", "key")) == SECRET_B
    listed = await vault.list()
    assert [(str(m.ref), m.version) for m in listed] == [("agent:ops/key", 1), ("global/openai", 2)]
    assert [str(m.ref) for m in await vault.list("agent:ops")] == ["agent:ops/key"]
    assert SECRET_A2 not in repr(listed) and SECRET_A2 not in str(listed[1].as_dict())


async def test_unicode_values_survive_and_limits_are_enforced(store: Store, tmp_path: Path) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/u", "pässwörd ✓")
    assert await vault.get("global/u") == "pässwörd ✓"
    with pytest.raises(VaultError, match="global/e is empty"):
        await vault.put("global/e", "")
    with pytest.raises(VaultError, match="the limit is 65536 bytes"):
        await vault.put("global/big", "x" * 65537)


async def test_delete_reports_whether_something_was_removed(store: Store, tmp_path: Path) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/gone", SECRET_A)
    assert await vault.delete("global/gone") is True
    assert await vault.delete("global/gone") is False
    with pytest.raises(SecretNotFound, match="palyra vault put global/gone"):
        await vault.get("global/gone")


async def test_wrong_master_key_is_detected_before_any_decrypt(
    store: Store, tmp_path: Path
) -> None:
    vault = await Vault.open(store, resolver(tmp_path, PALYRA_VAULT_KEY=new_key_b64()))
    await vault.put("global/openai", SECRET_A)
    with pytest.raises(VaultKeyError) as err:
        await Vault.open(store, resolver(tmp_path, PALYRA_VAULT_KEY=new_key_b64()))
    message = str(err.value)
    assert "PALYRA_VAULT_KEY is set, but it is not the master key" in message
    assert "Set PALYRA_VAULT_KEY to the key the secrets were written with" in message
    assert SECRET_A not in message


async def test_tampered_ciphertext_is_an_error_naming_the_ref(store: Store, tmp_path: Path) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/openai", SECRET_A)
    row = await _row(store, "global/openai")
    ct = bytearray(row["ciphertext"])  # type: ignore[arg-type]
    ct[3] ^= 0x01
    await _overwrite(store, "global/openai", {"ciphertext": bytes(ct)})
    with pytest.raises(
        VaultIntegrityError, match="vault secret global/openai failed its integrity"
    ):
        await vault.get("global/openai")


async def test_ciphertext_swapped_between_entries_fails_to_open(
    store: Store, tmp_path: Path
) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/a", SECRET_A)
    await vault.put("global/b", SECRET_B)
    b = await _row(store, "global/b")
    await _overwrite(store, "global/a", {k: b[k] for k in _SEALED})
    with pytest.raises(VaultIntegrityError, match="global/a"):
        await vault.get("global/a")
    assert await vault.get("global/b") == SECRET_B


async def test_rollback_to_an_old_version_blob_fails_to_open(store: Store, tmp_path: Path) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/a", SECRET_A)
    old = await _row(store, "global/a")
    await vault.put("global/a", SECRET_A2)
    await _overwrite(store, "global/a", {k: old[k] for k in _SEALED})
    with pytest.raises(VaultIntegrityError, match="rolled back"):
        await vault.get("global/a")


async def test_rotation_to_a_new_key_file_keeps_every_secret(store: Store, tmp_path: Path) -> None:
    keys = resolver(tmp_path)
    vault = await Vault.open(store, keys)
    values = {f"global/k{i}": f"value-{i}-9d7c" for i in range(5)}
    for ref, value in values.items():
        await vault.put(ref, value)
    old_id = vault.key_id
    old_file = (tmp_path / "vault.key").read_bytes()
    assert await vault.rotate_master_key(KeyFile(tmp_path / "vault.key")) == 5
    assert vault.key_id != old_id
    assert (tmp_path / "vault.key").read_bytes() != old_file
    assert not (tmp_path / "vault.key.new").exists()
    reopened = await Vault.open(store, resolver(tmp_path))
    assert {ref: await reopened.get(ref) for ref in values} == values


async def test_rotation_to_env_and_then_to_passphrase_keeps_every_secret(
    store: Store, tmp_path: Path
) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/a", SECRET_A)
    new_key = new_key_b64()
    assert await vault.rotate_master_key(EnvKey({"NEW": new_key}, "NEW")) == 1
    KeyFile(tmp_path / "vault.key").remove()
    env_vault = await Vault.open(store, resolver(tmp_path, PALYRA_VAULT_KEY=new_key))
    assert await env_vault.get("global/a") == SECRET_A
    await env_vault.rotate_master_key(Passphrase("correct horse battery", CHEAP_ARGON2))
    pp_vault = await Vault.open(
        store, resolver(tmp_path, PALYRA_VAULT_PASSPHRASE="correct horse battery")
    )
    assert await pp_vault.get("global/a") == SECRET_A
    with pytest.raises(VaultKeyError, match=r"no vault master key found.*PALYRA_VAULT_PASSPHRASE"):
        await Vault.open(store, resolver(tmp_path))


async def test_failed_rotation_leaves_old_key_and_no_staged_file(
    store: Store, tmp_path: Path
) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/a", SECRET_A)
    await _overwrite(store, "global/a", {"wrapped_dek": b"\x00" * 48})
    with pytest.raises(VaultIntegrityError):
        await vault.rotate_master_key(KeyFile(tmp_path / "vault.key"))
    assert not (tmp_path / "vault.key.new").exists()
    assert (await Vault.open(store, resolver(tmp_path))).key_id == vault.key_id


async def test_passphrase_vault_uses_stored_salt_and_rejects_a_wrong_passphrase(
    store: Store, tmp_path: Path
) -> None:
    vault = await Vault.open(store, resolver(tmp_path, PALYRA_VAULT_PASSPHRASE="open sesame"))
    await vault.put("global/a", SECRET_A)
    assert not (tmp_path / "vault.key").exists()
    again = await Vault.open(store, resolver(tmp_path, PALYRA_VAULT_PASSPHRASE="open sesame"))
    assert await again.get("global/a") == SECRET_A
    with pytest.raises(VaultKeyError, match=r"from PALYRA_VAULT_PASSPHRASE\) does not match"):
        await Vault.open(store, resolver(tmp_path, PALYRA_VAULT_PASSPHRASE="open sesame!"))


async def test_new_vault_creates_private_key_file_and_nothing_leaks_to_disk(
    store: Store, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    vault = await Vault.open(store, resolver(state))
    for ref, value in {"global/a": SECRET_A, "global/b": SECRET_B}.items():
        await vault.put(ref, value)
    await vault.put("global/a", SECRET_A2)
    assert stat.S_IMODE((state / "vault.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert SECRET_A not in repr(vault)
    await store.aclose()  # flush the WAL into the database file
    assert plaintext_hits([tmp_path], [SECRET_A, SECRET_A2, SECRET_B]) == []


async def test_derived_keys_follow_the_master_key_and_the_purpose(
    store: Store, tmp_path: Path
) -> None:
    key = new_key_b64()
    one = await Vault.open(store, resolver(tmp_path, PALYRA_VAULT_KEY=key))
    again = await Vault.open(store, resolver(tmp_path / "elsewhere", PALYRA_VAULT_KEY=key))
    separate = await open_store(f"sqlite+aiosqlite:///{tmp_path}/other.db")
    try:
        other = await Vault.open(separate, resolver(tmp_path, PALYRA_VAULT_KEY=new_key_b64()))
    finally:
        await separate.aclose()
    derived = one.derive_key("console oauth session v1")
    assert len(derived) == 32
    assert again.derive_key("console oauth session v1") == derived  # another worker or replica
    assert one.derive_key("something else") != derived
    assert other.derive_key("console oauth session v1") != derived
    assert base64.b64decode(key) != derived
