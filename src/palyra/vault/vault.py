"""``Vault``: encrypted secrets in the store, one atomic transaction per write."""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from palyra.model.known_secrets import remember_secret
from palyra.store import Store
from palyra.vault.crypto import ENVELOPE_FORMAT, SealedSecret, open_sealed, rewrap, seal
from palyra.vault.errors import (
    SecretNotFound,
    VaultError,
    VaultIntegrityError,
    VaultKeyError,
    VaultNotCreated,
)
from palyra.vault.keys import KeyRecord, KeyResolver, MasterKey, RotationTarget
from palyra.vault.refs import VaultRef, check_scope
from palyra.vault.tables import VAULT_SCHEMA, vault_secrets, vault_settings

MAX_SECRET_BYTES = 64 * 1024
_PUT_ATTEMPTS = 3

Clock = Callable[[], float]
RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class SecretMeta:
    """What ``list`` shows: where a secret is and when it changed, never its value."""

    ref: VaultRef
    version: int
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": str(self.ref),
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class Vault:
    """Secrets by ``VaultRef``; plaintext exists only in memory, only while used."""

    def __init__(
        self,
        store: Store,
        master: MasterKey,
        *,
        clock: Clock = time.time,
        random: RandomBytes = os.urandom,
    ) -> None:
        self.store = store
        self._master = master
        self._clock = clock
        self._random = random

    @classmethod
    async def open(
        cls,
        store: Store,
        keys: KeyResolver,
        *,
        clock: Clock = time.time,
        random: RandomBytes = os.urandom,
        create: bool = True,
    ) -> Vault:
        """Migrate the vault tables, pick the master key and check it against the recorded id.

        With ``create=False`` (commands that only read) a vault with no master key yet is
        ``VaultNotCreated``, and no key file is made for it.
        """
        await store.migrate(VAULT_SCHEMA)
        record = await _load_record(store)
        if record is None and not create:
            raise VaultNotCreated(f"nothing is stored yet: {store.url} holds no vault secrets")
        master = keys.resolve(record)
        if record is None:
            try:
                async with store.begin() as conn:
                    await _save_record(conn, master.record(), insert=True)
            except sa.exc.IntegrityError:
                # Another process initialised the vault first; its key must be ours too.
                record = await _load_record(store)
                master = keys.resolve(record)
        return cls(store, master, clock=clock, random=random)

    @property
    def key_id(self) -> str:
        """The master key's fingerprint (safe to show)."""
        return self._master.key_id

    @property
    def key_source(self) -> str:
        return self._master.where

    def __repr__(self) -> str:
        return f"Vault(store={self.store.url!r}, key_id={self.key_id!r})"

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose``, derived from the master key (HKDF-SHA256).

        Every process and replica that shares the master key derives the same key, with nothing
        stored; a different purpose gives an unrelated key, and the master key cannot be
        recovered from it.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        info = b"palyra derived key: " + purpose.encode("utf-8")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            self._master.key
        )

    async def put(self, ref: VaultRef | str, value: str) -> SecretMeta:
        """Store a new version of a secret, replacing the old one atomically."""
        ref = _ref(ref)
        plaintext = value.encode("utf-8")
        if not plaintext:
            raise VaultError(f"the value for vault secret {ref} is empty; nothing was stored")
        if len(plaintext) > MAX_SECRET_BYTES:
            raise VaultError(
                f"the value for vault secret {ref} is {len(plaintext)} bytes; the limit is "
                f"{MAX_SECRET_BYTES} bytes"
            )
        remember_secret(value)
        for attempt in range(_PUT_ATTEMPTS):
            try:
                return await self._put_once(ref, plaintext)
            except sa.exc.IntegrityError:
                # A concurrent first put of the same ref won (PostgreSQL); go again as an update.
                if attempt == _PUT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _put_once(self, ref: VaultRef, plaintext: bytes) -> SecretMeta:
        now = _now_ms(self._clock)
        async with self.store.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(vault_secrets.c.version, vault_secrets.c.created_at_ms)
                    .where(_match(ref))
                    .with_for_update()
                )
            ).first()
            version = row.version + 1 if row else 1
            created = row.created_at_ms if row else now
            sealed = seal(self._master.key, ref, version, plaintext, self._random)
            values = {**_sealed_columns(sealed), "version": version, "updated_at_ms": now}
            if row:
                await conn.execute(sa.update(vault_secrets).where(_match(ref)).values(**values))
            else:
                await conn.execute(
                    sa.insert(vault_secrets).values(
                        scope=ref.scope, name=ref.name, created_at_ms=created, **values
                    )
                )
        return SecretMeta(ref, version, _dt(created), _dt(now))

    async def get(self, ref: VaultRef | str) -> str:
        """The current value; a wrong key or any tampering is an error, never garbage."""
        ref = _ref(ref)
        async with self.store.connect() as conn:
            row = (await conn.execute(sa.select(vault_secrets).where(_match(ref)))).first()
        if row is None:
            raise SecretNotFound(
                f"there is no vault secret {ref}; add it with: palyra vault put {ref}"
            )
        if row.format != ENVELOPE_FORMAT:
            raise VaultError(
                f"vault secret {ref} uses envelope format {row.format}, which this Palyra cannot "
                "read; upgrade Palyra"
            )
        if row.key_id != self._master.key_id:
            raise VaultKeyError(
                f"vault secret {ref} was written with a different master key (id {row.key_id}, "
                f"this key {self._master.key_id} from {self._master.where}); restore the original "
                "key or put the secret again"
            )
        plaintext = open_sealed(self._master.key, ref, row.version, _sealed(row))
        try:
            value = plaintext.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VaultIntegrityError(f"vault secret {ref} is not valid UTF-8 text") from exc
        remember_secret(value)
        return value

    async def delete(self, ref: VaultRef | str) -> bool:
        """Remove a secret; ``False`` when there was none."""
        ref = _ref(ref)
        async with self.store.begin() as conn:
            result = await conn.execute(sa.delete(vault_secrets).where(_match(ref)))
        return bool(result.rowcount)

    async def list(self, scope: str | None = None) -> builtins.list[SecretMeta]:
        """Metadata of every secret (optionally in one scope), sorted by scope then name."""
        query = sa.select(
            vault_secrets.c.scope,
            vault_secrets.c.name,
            vault_secrets.c.version,
            vault_secrets.c.created_at_ms,
            vault_secrets.c.updated_at_ms,
        ).order_by(vault_secrets.c.scope, vault_secrets.c.name)
        if scope is not None:
            query = query.where(vault_secrets.c.scope == check_scope(scope))
        async with self.store.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            SecretMeta(
                VaultRef(r.scope, r.name), r.version, _dt(r.created_at_ms), _dt(r.updated_at_ms)
            )
            for r in rows
        ]

    async def rotate_master_key(self, new_key_source: RotationTarget) -> int:
        """Re-wrap every data key under a new master key in one transaction; return the count.

        The new key is staged first and installed only after the database commits, so a crash
        leaves either the old key with old wraps or the new key with new wraps (``KeyFile``
        finishes an interrupted install on the next open).
        """
        new = new_key_source.prepare()
        try:
            async with self.store.begin() as conn:
                rows: Sequence[Any] = (
                    await conn.execute(sa.select(vault_secrets).with_for_update())
                ).all()
                for row in rows:
                    ref = VaultRef(row.scope, row.name)
                    sealed = rewrap(
                        self._master.key, new.key, ref, row.version, _sealed(row), self._random
                    )
                    await conn.execute(
                        sa.update(vault_secrets)
                        .where(_match(ref))
                        .values(
                            key_id=sealed.key_id,
                            dek_nonce=sealed.dek_nonce,
                            wrapped_dek=sealed.wrapped_dek,
                        )
                    )
                await _save_record(conn, new.record(), insert=False)
        except BaseException:
            new_key_source.abort()
            raise
        new_key_source.commit()
        self._master = new
        return len(rows)


def _ref(ref: VaultRef | str) -> VaultRef:
    return ref if isinstance(ref, VaultRef) else VaultRef.parse(ref)


def _match(ref: VaultRef) -> sa.ColumnElement[bool]:
    return sa.and_(vault_secrets.c.scope == ref.scope, vault_secrets.c.name == ref.name)


def _sealed(row: Any) -> SealedSecret:
    return SealedSecret(row.key_id, row.dek_nonce, row.wrapped_dek, row.nonce, row.ciphertext)


def _sealed_columns(sealed: SealedSecret) -> dict[str, Any]:
    return {
        "format": ENVELOPE_FORMAT,
        "key_id": sealed.key_id,
        "dek_nonce": sealed.dek_nonce,
        "wrapped_dek": sealed.wrapped_dek,
        "nonce": sealed.nonce,
        "ciphertext": sealed.ciphertext,
    }


def _now_ms(clock: Clock) -> int:
    return int(clock() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def _load_record(store: Store) -> KeyRecord | None:
    async with store.connect() as conn:
        result = await conn.execute(sa.select(vault_settings.c.name, vault_settings.c.value))
        rows: dict[str, str] = {str(r.name): str(r.value) for r in result}
    if "key_id" not in rows:
        return None
    kdf = json.loads(rows["kdf"]) if rows.get("kdf") else None
    return KeyRecord(rows["key_id"], rows.get("key_source", "file"), kdf)


async def _save_record(conn: AsyncConnection, record: KeyRecord, *, insert: bool) -> None:
    values = {
        "key_id": record.key_id,
        "key_source": record.source,
        "kdf": json.dumps(dict(record.kdf)) if record.kdf else "",
    }
    if insert:
        await conn.execute(
            sa.insert(vault_settings), [{"name": k, "value": v} for k, v in values.items()]
        )
        return
    for name, value in values.items():
        await conn.execute(
            sa.update(vault_settings).where(vault_settings.c.name == name).values(value=value)
        )
