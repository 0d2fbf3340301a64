"""Secret references in config: ``env:NAME``, ``vault:scope/name``, ``file:PATH``.

A ``file:`` secret must be a regular file that is not readable or writable by other users
(mode ``o-rwx``); otherwise it is refused, because anyone on the machine could read or swap it.
One trailing newline is stripped, so ``echo key > file`` works.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from palyra.model.known_secrets import remember_secret
from palyra.vault.errors import SecretNotFound, SecretRefError, VaultError
from palyra.vault.refs import VaultRef

if TYPE_CHECKING:
    from palyra.vault.vault import Vault

MAX_FILE_SECRET_BYTES = 64 * 1024
_FORMS = "env:NAME, vault:scope/name or file:/path"


async def resolve_secret_ref(
    ref: str, vault: Vault | None, *, environ: Mapping[str, str] | None = None
) -> str:
    """The secret a reference points at; errors name the reference, never a value."""
    kind, sep, target = ref.partition(":")
    if not sep or not target:
        raise SecretRefError(f"secret reference {ref!r} is not one of {_FORMS}")
    if kind == "env":
        value = _from_env(ref, target, os.environ if environ is None else environ)
    elif kind == "file":
        value = _from_file(ref, target)
    elif kind == "vault":
        value = await _from_vault(ref, target, vault)
    else:
        raise SecretRefError(f"secret reference {ref!r} has unknown kind {kind!r}; use {_FORMS}")
    remember_secret(value)
    return value


def _from_env(ref: str, name: str, environ: Mapping[str, str]) -> str:
    value = environ.get(name)
    if value is None:
        raise SecretRefError(
            f"secret reference {ref!r}: environment variable {name} is not set; export it or "
            "change the reference"
        )
    if not value.strip():
        raise SecretRefError(f"secret reference {ref!r}: environment variable {name} is empty")
    return value


def _from_file(ref: str, target: str) -> str:
    path = Path(target).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretRefError(f"secret reference {ref!r}: {path} does not exist") from None
    except OSError as exc:
        raise SecretRefError(f"secret reference {ref!r}: cannot stat {path}: {exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise SecretRefError(f"secret reference {ref!r}: {path} is not a regular file")
    if info.st_mode & 0o007:
        raise SecretRefError(
            f"secret reference {ref!r}: {path} is accessible by other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}); run: chmod 600 {path}"
        )
    if info.st_size > MAX_FILE_SECRET_BYTES:
        raise SecretRefError(
            f"secret reference {ref!r}: {path} is {info.st_size} bytes; the limit is "
            f"{MAX_FILE_SECRET_BYTES}"
        )
    try:
        value = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretRefError(
            f"secret reference {ref!r}: cannot read {path} as UTF-8 text ({exc.__class__.__name__})"
        ) from exc
    value = value.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise SecretRefError(f"secret reference {ref!r}: {path} is empty")
    return value


async def _from_vault(ref: str, target: str, vault: Vault | None) -> str:
    vref = VaultRef.parse(target)
    if vault is None:
        raise SecretRefError(
            f"secret reference {ref!r} needs the vault, which is not open here; use an env: or "
            "file: reference, or run where the vault is available"
        )
    try:
        return await vault.get(vref)
    except SecretNotFound as exc:
        raise SecretRefError(
            f"secret reference {ref!r}: the vault has no secret {vref}; add it with: "
            f"palyra vault put {vref}"
        ) from exc
    except VaultError as exc:
        raise SecretRefError(f"secret reference {ref!r}: {exc.envelope.message}") from exc
