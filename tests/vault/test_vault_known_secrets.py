"""A secret the vault stores or decrypts is one the process holds: error text is scrubbed of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from vault_helpers import resolver

from palyra.model import errors as model_errors
from palyra.model import known_secrets, redact
from palyra.store import Store
from palyra.vault import Vault


def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty registry, as in a new process."""
    fresh = known_secrets.KnownSecrets()
    monkeypatch.setattr(known_secrets, "KNOWN_SECRETS", fresh)
    monkeypatch.setattr(model_errors, "KNOWN_SECRETS", fresh)


async def test_put_and_get_register_the_value_for_redaction(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    stored = "VaultPut7c1e9b3a5d2f8e6c4a0b9d7e"
    _fresh_registry(monkeypatch)
    await vault.put("global/put", stored)
    assert redact(f"echo {stored}") == "echo [REDACTED]"

    _fresh_registry(monkeypatch)  # a process that only reads the vault
    assert stored in redact(stored)
    assert await vault.get("global/put") == stored
    assert redact(f"echo {stored}") == "echo [REDACTED]"
