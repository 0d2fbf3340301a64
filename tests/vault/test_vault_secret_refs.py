"""resolve_secret_ref: env:, file: and vault: references, each failing clearly and without values."""

from __future__ import annotations

from pathlib import Path

import pytest
from vault_helpers import resolver

from palyra.store import Store
from palyra.vault import SecretRefError, Vault, resolve_secret_ref

VALUE = "sk-ref-value-4e1f9a"


async def test_env_reference_reads_the_variable() -> None:
    assert await resolve_secret_ref("env:K", None, environ={"K": VALUE}) == VALUE
    with pytest.raises(SecretRefError, match="'env:K': environment variable K is not set"):
        await resolve_secret_ref("env:K", None, environ={})
    with pytest.raises(SecretRefError, match="K is empty"):
        await resolve_secret_ref("env:K", None, environ={"K": "  "})


async def test_file_reference_strips_one_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(VALUE + "\n\n")
    path.chmod(0o600)
    assert await resolve_secret_ref(f"file:{path}", None) == VALUE + "\n"


async def test_file_reference_refuses_files_other_users_can_read(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(VALUE)
    path.chmod(0o644)
    with pytest.raises(SecretRefError) as err:
        await resolve_secret_ref(f"file:{path}", None)
    assert f"run: chmod 600 {path}" in str(err.value)
    assert VALUE not in str(err.value)


async def test_file_reference_errors_for_missing_empty_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SecretRefError, match="does not exist"):
        await resolve_secret_ref(f"file:{tmp_path}/nope", None)
    with pytest.raises(SecretRefError, match="is not a regular file"):
        await resolve_secret_ref(f"file:{tmp_path}", None)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(SecretRefError, match="is empty"):
        await resolve_secret_ref(f"file:{empty}", None)


async def test_vault_reference_reads_the_vault(store: Store, tmp_path: Path) -> None:
    vault = await Vault.open(store, resolver(tmp_path))
    await vault.put("global/openai", VALUE)
    assert await resolve_secret_ref("vault:global/openai", vault) == VALUE
    with pytest.raises(SecretRefError, match="palyra vault put global/missing"):
        await resolve_secret_ref("vault:global/missing", vault)
    with pytest.raises(SecretRefError, match="needs the vault, which is not open"):
        await resolve_secret_ref("vault:global/openai", None)


@pytest.mark.parametrize(
    ("ref", "says"),
    [("plainvalue", "is not one of"), ("http:x", "unknown kind 'http'"), ("env:", "not one of")],
)
async def test_malformed_references_name_the_accepted_forms(ref: str, says: str) -> None:
    with pytest.raises(SecretRefError, match=says):
        await resolve_secret_ref(ref, None)
