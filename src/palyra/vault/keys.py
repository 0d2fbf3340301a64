"""Where the vault master key comes from, and how a wrong or missing key is reported.

Sources, tried in order: ``PALYRA_VAULT_KEY`` (base64 of 32 bytes), the key file ``vault.key`` in
the state dir, ``PALYRA_VAULT_PASSPHRASE`` (Argon2id with a salt stored in the vault), and the OS
keyring when the optional ``keyring`` package is installed. A set ``PALYRA_VAULT_KEY`` is used or
is an error (a wrong key is never skipped in favour of another source); after it, the first source
whose key matches the recorded key id wins. A brand-new vault with no source gets a fresh random
key file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from palyra.vault.crypto import KEY_BYTES, key_id_of
from palyra.vault.errors import VaultKeyError

KEY_ENV = "PALYRA_VAULT_KEY"
PASSPHRASE_ENV = "PALYRA_VAULT_PASSPHRASE"
KEY_FILE_NAME = "vault.key"
KEYRING_SERVICE = "palyra"
KEYRING_USERNAME = "vault-master-key"
SALT_BYTES = 16
# A key file is one base64 line (45 bytes); anything much larger is not a key file.
MAX_KEY_FILE_BYTES = 1024
_GENERATE_HINT = "generate one with: openssl rand -base64 32"

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost; the default follows RFC 9106's memory-constrained recommendation."""

    iterations: int = 3
    memory_cost_kib: int = 64 * 1024
    lanes: int = 4


@dataclass(frozen=True)
class KeyRecord:
    """What the vault stores about its master key: a fingerprint, never the key."""

    key_id: str
    source: str
    kdf: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class MasterKey:
    """A loaded master key. ``where`` names its origin for messages; the key never prints."""

    key: bytes = field(repr=False)
    source: str
    where: str
    kdf: Mapping[str, Any] | None = None

    @property
    def key_id(self) -> str:
        return key_id_of(self.key)

    def record(self) -> KeyRecord:
        return KeyRecord(self.key_id, self.source, self.kdf)


class KeySource(Protocol):
    source: str

    def describe(self) -> str: ...

    def load(self, record: KeyRecord | None) -> MasterKey | None: ...


class RotationTarget(Protocol):
    """A new master key for ``Vault.rotate_master_key``: staged, then committed or aborted."""

    def prepare(self) -> MasterKey: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def decode_key(text: str, where: str) -> bytes:
    """Base64 of exactly 32 bytes, or a ``VaultKeyError`` naming ``where``."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VaultKeyError(f"{where} is not valid base64; {_GENERATE_HINT}") from exc
    if len(key) != KEY_BYTES:
        raise VaultKeyError(
            f"{where} must be base64 of exactly {KEY_BYTES} bytes, got {len(key)} bytes; "
            f"{_GENERATE_HINT}"
        )
    return key


class EnvKey:
    """A key in an environment variable (``PALYRA_VAULT_KEY``, or another for rotation)."""

    source = "env"

    def __init__(self, environ: Mapping[str, str], var: str = KEY_ENV) -> None:
        self.environ = environ
        self.var = var

    def describe(self) -> str:
        return self.var

    def load(self, record: KeyRecord | None = None) -> MasterKey | None:
        text = self.environ.get(self.var, "")
        if not text.strip():
            return None
        return MasterKey(decode_key(text, self.var), self.source, self.var)

    def prepare(self) -> MasterKey:
        key = self.load()
        if key is None:
            raise VaultKeyError(f"{self.var} is not set; set it to the new key ({_GENERATE_HINT})")
        return key

    def commit(self) -> None:
        """Nothing to install: the operator owns the environment."""

    def abort(self) -> None:
        """Nothing was staged."""


def read_key_file(path: Path) -> str | None:
    """The text of a key file, or ``None`` when there is none; refused like ssh refuses a key.

    The file must be a regular file (not a link, FIFO or device: reading those could hang or
    read another file's bytes), readable by its owner only (a key others could read may be
    exposed, so it is reported rather than silently tightened), and at most
    ``MAX_KEY_FILE_BYTES`` long. Nothing is ever changed on disk.
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VaultKeyError(
                f"the vault key file {path} is a symbolic link; Palyra does not follow links for "
                f"the key file. Replace the link with the key file itself, or set {KEY_ENV} to "
                "the key"
            ) from None
        raise VaultKeyError(f"cannot open the vault key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise VaultKeyError(
                f"the vault key file {path} is not a regular file (it is {_file_kind(info)}); "
                f"move it aside and restore the key file from your backup, or set {KEY_ENV}"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise VaultKeyError(
                f"the vault key file {path} has mode {mode:o}: other users may read or change "
                f"it, so Palyra refuses to use it. Fix it with: chmod 600 {path} (if others "
                "could have read it, rotate the key afterwards: palyra vault rotate-key)"
            )
        data = _read_at_most(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise VaultKeyError(f"cannot read the vault key file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise VaultKeyError(
            f"the vault key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes, so it is not "
            f"a vault key (one base64 line of {KEY_BYTES} bytes); restore it from your backup"
        )
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise VaultKeyError(
            f"the vault key file {path} is not base64 text; {_GENERATE_HINT}"
        ) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _file_kind(info: os.stat_result) -> str:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


class KeyFile:
    """``vault.key`` beside the database: 0600, written atomically, never overwritten in place.

    It is read by :func:`read_key_file`'s rules: no links, no devices, owner-only, small.
    """

    source = "file"

    def __init__(self, path: Path, random: RandomBytes = os.urandom) -> None:
        self.path = path
        self.pending = path.with_name(path.name + ".new")
        self.random = random

    def describe(self) -> str:
        return str(self.path)

    def load(self, record: KeyRecord | None = None) -> MasterKey | None:
        key = self._read(self.path)
        if key is None:
            return None
        if record is not None and key_id_of(key) != record.key_id:
            # A rotation committed to the database but stopped before installing the new file.
            staged = self._read(self.pending)
            if staged is not None and key_id_of(staged) == record.key_id:
                self.commit()
                key = staged
        return MasterKey(key, self.source, str(self.path))

    def create(self) -> MasterKey:
        """Create the key file for a new vault; if another process won the race, use theirs."""
        key = self.random(KEY_BYTES)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self._write_private(self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp"), key)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        _fsync_dir(self.path.parent)
        loaded = self.load()
        assert loaded is not None
        return loaded

    def prepare(self) -> MasterKey:
        """Stage a new random key as ``vault.key.new``; ``commit`` moves it into place."""
        key = self.random(KEY_BYTES)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.pending.unlink()
        self._write_private(self.pending, key)
        return MasterKey(key, self.source, str(self.path))

    def commit(self) -> None:
        os.replace(self.pending, self.path)
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pending.unlink()

    def remove(self) -> bool:
        """Delete a key file the vault no longer uses (after rotating to another source)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _read(self, path: Path) -> bytes | None:
        text = read_key_file(path)
        if text is None:
            return None
        return decode_key(text, f"the vault key file {path}")

    @staticmethod
    def _write_private(path: Path, key: bytes) -> Path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(key).decode("ascii") + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return path


class Passphrase:
    """A key derived from a passphrase with Argon2id; salt and cost are stored in the vault."""

    source = "passphrase"

    def __init__(
        self,
        passphrase: str,
        params: Argon2Params | None = None,
        random: RandomBytes = os.urandom,
        where: str = PASSPHRASE_ENV,
    ) -> None:
        self._passphrase = passphrase
        self.params = params or Argon2Params()
        self.random = random
        self.where = where

    def __repr__(self) -> str:
        return f"Passphrase(where={self.where!r}, params={self.params!r})"

    def describe(self) -> str:
        return self.where

    def load(self, record: KeyRecord | None = None) -> MasterKey | None:
        if record is None:
            return self.prepare()
        if record.source != "passphrase" or not record.kdf:
            return None  # the vault was not written with a passphrase; skip the costly KDF
        return self._derive(dict(record.kdf))

    def prepare(self) -> MasterKey:
        """A key under a fresh random salt (a new vault, or a rotation target)."""
        p = self.params
        salt = base64.b64encode(self.random(SALT_BYTES)).decode("ascii")
        return self._derive(
            {
                "algorithm": "argon2id",
                "salt": salt,
                "iterations": p.iterations,
                "memory_cost_kib": p.memory_cost_kib,
                "lanes": p.lanes,
            }
        )

    def commit(self) -> None:
        """The salt is stored with the re-wrapped secrets; nothing else to install."""

    def abort(self) -> None:
        """Nothing was staged."""

    def _derive(self, kdf: dict[str, Any]) -> MasterKey:
        key = Argon2id(
            salt=base64.b64decode(kdf["salt"]),
            length=KEY_BYTES,
            iterations=int(kdf["iterations"]),
            lanes=int(kdf["lanes"]),
            memory_cost=int(kdf["memory_cost_kib"]),
        ).derive(self._passphrase.encode("utf-8"))
        return MasterKey(key, self.source, self.where, kdf)


class KeyringKey:
    """A base64 key stored in the OS keyring (service ``palyra``, user ``vault-master-key``)."""

    source = "keyring"

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def describe(self) -> str:
        return f"the OS keyring ({KEYRING_SERVICE}/{KEYRING_USERNAME})"

    def load(self, record: KeyRecord | None = None) -> MasterKey | None:
        text = self.backend.get_password(KEYRING_SERVICE, KEYRING_USERNAME)
        if not text:
            return None
        return MasterKey(decode_key(text, self.describe()), self.source, self.describe())


def system_keyring() -> Any | None:
    """The ``keyring`` module when installed (``pip install palyra[keyring]``), else ``None``."""
    try:
        import keyring
    except ImportError:
        return None
    return keyring


@dataclass
class KeyResolver:
    """Picks the master key for a vault from the configured sources."""

    state_dir: Path
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    argon2: Argon2Params = field(default_factory=Argon2Params)
    keyring: Any | None = None
    random: RandomBytes = os.urandom

    @property
    def key_file(self) -> KeyFile:
        return KeyFile(self.state_dir / KEY_FILE_NAME, self.random)

    def sources(self) -> list[KeySource]:
        found: list[KeySource] = [EnvKey(self.environ), self.key_file]
        passphrase = self.environ.get(PASSPHRASE_ENV)
        if passphrase:
            found.append(Passphrase(passphrase, self.argon2, self.random))
        if self.keyring is not None:
            found.append(KeyringKey(self.keyring))
        return found

    def resolve(self, record: KeyRecord | None) -> MasterKey:
        """The first available key (new vault) or the first matching one (existing vault)."""
        mismatched: list[str] = []
        for source in self.sources():
            key = source.load(record)
            if key is None:
                continue
            if record is None or key.key_id == record.key_id:
                return key
            if isinstance(source, EnvKey):
                raise VaultKeyError(_wrong_env_key(source.var, key, record))
            mismatched.append(key.where)
        if record is None:
            return self.key_file.create()
        if mismatched:
            raise VaultKeyError(
                f"the vault master key (from {', '.join(mismatched)}) does not match the one these "
                f"secrets were written with (a key from {_source_name(record.source)}); set "
                f"{KEY_ENV} / restore {self.key_file.path} / set {PASSPHRASE_ENV} to the "
                "original key, or point [storage] url at the right database"
            )
        raise VaultKeyError(
            f"no vault master key found; the secrets were written with a key from "
            f"{_source_name(record.source)}. {_missing_hint(record.source, self.key_file.path)}"
        )


def _wrong_env_key(var: str, key: MasterKey, record: KeyRecord) -> str:
    """A set variable is the operator's choice of key: never skipped for the next source."""
    fix = f"Set {var} to the key the secrets were written with"
    if record.source != "env":
        fix += f", or unset it to use {_source_name(record.source)}"
    return (
        f"{var} is set, but it is not the master key this vault's secrets were written with "
        f"(its key id is {key.key_id}; the vault's key has id {record.key_id}, from "
        f"{_source_name(record.source)}). {fix}"
    )


def _source_name(source: str) -> str:
    return {
        "env": KEY_ENV,
        "file": "the key file",
        "passphrase": PASSPHRASE_ENV,
        "keyring": "the OS keyring",
    }.get(source, source)


def _missing_hint(source: str, key_file: Path) -> str:
    if source == "file":
        return f"Restore {key_file} from your backup, or set {KEY_ENV} to its contents."
    if source == "passphrase":
        return f"Set {PASSPHRASE_ENV} to the passphrase."
    if source == "keyring":
        return "Install the keyring extra (pip install palyra[keyring]) and unlock the keyring."
    return f"Set {KEY_ENV} to the key."


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
