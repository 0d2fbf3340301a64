"""The vault: secrets encrypted at rest in the store, addressed by ``VaultRef``."""

from palyra.vault.errors import (
    InvalidVaultRef,
    SecretNotFound,
    SecretRefError,
    VaultError,
    VaultIntegrityError,
    VaultKeyError,
    VaultNotCreated,
)
from palyra.vault.keys import (
    Argon2Params,
    EnvKey,
    KeyFile,
    KeyResolver,
    KeyringKey,
    MasterKey,
    Passphrase,
    RotationTarget,
    system_keyring,
)
from palyra.vault.refs import VaultRef
from palyra.vault.secret_refs import resolve_secret_ref
from palyra.vault.tables import VAULT_SCHEMA
from palyra.vault.vault import MAX_SECRET_BYTES, SecretMeta, Vault

__all__ = [
    "MAX_SECRET_BYTES",
    "VAULT_SCHEMA",
    "Argon2Params",
    "EnvKey",
    "InvalidVaultRef",
    "KeyFile",
    "KeyResolver",
    "KeyringKey",
    "MasterKey",
    "Passphrase",
    "RotationTarget",
    "SecretMeta",
    "SecretNotFound",
    "SecretRefError",
    "Vault",
    "VaultError",
    "VaultIntegrityError",
    "VaultKeyError",
    "VaultNotCreated",
    "VaultRef",
    "resolve_secret_ref",
    "system_keyring",
]
