"""Master key sources: validation, precedence, interrupted rotation, missing keys, keyring."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from vault_helpers import CHEAP_ARGON2, new_key_b64, resolver

from palyra.store import open_store
from palyra.vault import KeyFile, KeyResolver, Vault, VaultKeyError
from palyra.vault.keys import KeyRecord


def test_env_key_of_wrong_length_names_the_variable_and_the_fix(tmp_path: Path) -> None:
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(VaultKeyError) as err:
        resolver(tmp_path, PALYRA_VAULT_KEY=short).resolve(None)
    assert "PALYRA_VAULT_KEY must be base64 of exactly 32 bytes, got 16 bytes" in str(err.value)
    assert "openssl rand -base64 32" in str(err.value)
    with pytest.raises(VaultKeyError, match="PALYRA_VAULT_KEY is not valid base64"):
        resolver(tmp_path, PALYRA_VAULT_KEY="not base64!!").resolve(None)


def test_env_key_wins_over_key_file_and_passphrase(tmp_path: Path) -> None:
    KeyFile(tmp_path / "vault.key").create()
    key = new_key_b64()
    got = resolver(tmp_path, PALYRA_VAULT_KEY=key, PALYRA_VAULT_PASSPHRASE="pw").resolve(None)
    assert (got.source, got.key) == ("env", base64.b64decode(key))


def test_after_the_env_key_the_first_source_matching_the_recorded_key_wins(
    tmp_path: Path,
) -> None:
    KeyFile(tmp_path / "vault.key").create()  # a stale file beside a keyring-keyed vault
    ring_key = new_key_b64()
    keys = KeyResolver(tmp_path, environ={}, argon2=CHEAP_ARGON2, keyring=FakeKeyring(ring_key))
    record = KeyRecord(
        resolver(tmp_path, PALYRA_VAULT_KEY=ring_key).resolve(None).key_id, "keyring"
    )
    assert keys.resolve(record).source == "keyring"


def test_key_file_is_created_once_0600_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "fresh"
    first = resolver(state).resolve(None)
    assert stat.S_IMODE((state / "vault.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert resolver(state).resolve(first.record()).key == first.key
    assert list(state.iterdir()) == [state / "vault.key"]


def test_interrupted_rotation_is_finished_from_the_staged_key_file(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "vault.key")
    key_file.create()
    staged = key_file.prepare()  # the database committed staged.key_id, then the process died
    recovered = resolver(tmp_path).resolve(KeyRecord(staged.key_id, "file"))
    assert recovered.key == staged.key
    assert not key_file.pending.exists()
    assert key_file.load() is not None and key_file.load().key == staged.key  # type: ignore[union-attr]


async def test_missing_key_file_for_an_existing_vault_says_to_restore_it(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        await Vault.open(store, resolver(tmp_path))
        (tmp_path / "vault.key").unlink()
        with pytest.raises(VaultKeyError) as err:
            await Vault.open(store, resolver(tmp_path))
        assert f"Restore {tmp_path}/vault.key from your backup" in str(err.value)
        assert not (tmp_path / "vault.key").exists()  # no silent new key for an old vault
    finally:
        await store.aclose()


class FakeKeyring:
    def __init__(self, value: str | None) -> None:
        self.value = value
        self.asked: list[tuple[str, str]] = []

    def get_password(self, service: str, username: str) -> str | None:
        self.asked.append((service, username))
        return self.value


def test_keyring_key_is_used_when_no_env_or_file_key_exists(tmp_path: Path) -> None:
    key = new_key_b64()
    ring = FakeKeyring(key)
    got = KeyResolver(tmp_path, environ={}, argon2=CHEAP_ARGON2, keyring=ring).resolve(None)
    assert (got.source, got.key) == ("keyring", base64.b64decode(key))
    assert ring.asked == [("palyra", "vault-master-key")]
    assert not (tmp_path / "vault.key").exists()


def test_empty_keyring_falls_back_to_a_new_key_file(tmp_path: Path) -> None:
    got = KeyResolver(tmp_path, environ={}, keyring=FakeKeyring(None)).resolve(None)
    assert got.source == "file"


def test_master_key_repr_never_shows_the_key(tmp_path: Path) -> None:
    key = resolver(tmp_path).resolve(None)
    assert base64.b64encode(key.key).decode() not in repr(key)
    assert repr(key.key) not in repr(key)
