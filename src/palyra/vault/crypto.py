"""Envelope encryption, pure: a fresh AES-256-GCM data key per secret version, wrapped by the master.

Both seals carry associated data binding the scope, name and version (the wrap also binds the
master key id), so a blob copied to another entry, or an old version written back, fails to open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from palyra.vault.errors import VaultIntegrityError
from palyra.vault.refs import VaultRef

KEY_BYTES = 32
NONCE_BYTES = 12
ENVELOPE_FORMAT = 1
_DOMAIN = b"palyra.vault.v1"

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class SealedSecret:
    """What the database stores for one secret version (all of it safe to store)."""

    key_id: str
    dek_nonce: bytes
    wrapped_dek: bytes
    nonce: bytes
    ciphertext: bytes


def key_id_of(master: bytes) -> str:
    """A one-way fingerprint of the master key: recorded to detect a wrong key before decrypting."""
    return hmac.new(master, _DOMAIN + b"|key-id", hashlib.sha256).hexdigest()[:32]


def _aad(kind: bytes, ref: VaultRef, version: int, key_id: str = "") -> bytes:
    parts = (_DOMAIN, kind, ref.scope.encode(), ref.name.encode(), str(version).encode())
    return b"\x00".join(parts) + (b"\x00" + key_id.encode() if key_id else b"")


def seal(
    master: bytes, ref: VaultRef, version: int, plaintext: bytes, random: RandomBytes
) -> SealedSecret:
    """Encrypt ``plaintext`` under a new data key, and wrap that key with ``master``."""
    key_id = key_id_of(master)
    dek = random(KEY_BYTES)
    nonce = random(NONCE_BYTES)
    ciphertext = AESGCM(dek).encrypt(nonce, plaintext, _aad(b"data", ref, version))
    return _wrap(master, key_id, dek, ref, version, random, nonce, ciphertext)


def open_sealed(master: bytes, ref: VaultRef, version: int, sealed: SealedSecret) -> bytes:
    """Decrypt one stored version; any tampering, swap or rollback raises ``VaultIntegrityError``."""
    dek = _unwrap(master, ref, version, sealed)
    try:
        return AESGCM(dek).decrypt(sealed.nonce, sealed.ciphertext, _aad(b"data", ref, version))
    except (InvalidTag, ValueError) as exc:
        raise _integrity_error(ref) from exc


def rewrap(
    old_master: bytes,
    new_master: bytes,
    ref: VaultRef,
    version: int,
    sealed: SealedSecret,
    random: RandomBytes,
) -> SealedSecret:
    """Re-wrap the data key under a new master key; the secret's own ciphertext is unchanged."""
    dek = _unwrap(old_master, ref, version, sealed)
    return _wrap(
        new_master,
        key_id_of(new_master),
        dek,
        ref,
        version,
        random,
        sealed.nonce,
        sealed.ciphertext,
    )


def _wrap(
    master: bytes,
    key_id: str,
    dek: bytes,
    ref: VaultRef,
    version: int,
    random: RandomBytes,
    nonce: bytes,
    ciphertext: bytes,
) -> SealedSecret:
    dek_nonce = random(NONCE_BYTES)
    wrapped = AESGCM(master).encrypt(dek_nonce, dek, _aad(b"dek", ref, version, key_id))
    return SealedSecret(key_id, dek_nonce, wrapped, nonce, ciphertext)


def _unwrap(master: bytes, ref: VaultRef, version: int, sealed: SealedSecret) -> bytes:
    try:
        dek = AESGCM(master).decrypt(
            sealed.dek_nonce, sealed.wrapped_dek, _aad(b"dek", ref, version, sealed.key_id)
        )
    except (InvalidTag, ValueError) as exc:
        raise _integrity_error(ref) from exc
    if len(dek) != KEY_BYTES:
        raise _integrity_error(ref)
    return dek


def _integrity_error(ref: VaultRef) -> VaultIntegrityError:
    return VaultIntegrityError(
        f"vault secret {ref} failed its integrity check: the stored ciphertext was modified, "
        "copied from another entry or rolled back to an older version. Put the secret again "
        f"(palyra vault put {ref}) and check who can write the database."
    )
