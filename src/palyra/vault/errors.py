"""Vault failures. Messages name the ref, the key source and the fix; never a secret value."""

from __future__ import annotations

from palyra.model import FailureClass, PalyraError


class VaultError(PalyraError):
    """Base of every vault failure (a configuration problem unless a subclass says otherwise)."""

    failure = FailureClass.CONFIG

    def __init__(self, message: str) -> None:
        super().__init__(PalyraError.of(self.failure, message).envelope)


class InvalidVaultRef(VaultError, ValueError):
    """A ``scope/name`` reference that does not parse."""


class SecretNotFound(VaultError):
    failure = FailureClass.NOT_FOUND


class VaultNotCreated(VaultError):
    """A command that only reads found no vault: nothing has been stored in it yet."""

    failure = FailureClass.NOT_FOUND


class VaultKeyError(VaultError):
    """The master key is missing, malformed, or not the one the secrets were written with."""


class VaultIntegrityError(VaultError):
    """Stored ciphertext failed authentication: modified, swapped between entries or rolled back."""

    failure = FailureClass.INTERNAL


class SecretRefError(VaultError):
    """A config secret reference (``env:``, ``vault:``, ``file:``) cannot be resolved."""
