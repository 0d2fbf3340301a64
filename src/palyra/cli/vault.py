"""``palyra vault``: put, get, list, delete and rotate-key for encrypted secrets.

Values are read from stdin (when piped) or a hidden prompt, never from argv; only ``get`` prints
a value. Errors go to stderr with exit code 1; bad arguments exit with 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

from palyra.cli.common import ConfigOpt, DbUrlOpt, fail, fail_on, store_url
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.store import Store, StoreMissing, open_store
from palyra.vault import (
    EnvKey,
    InvalidVaultRef,
    KeyFile,
    KeyResolver,
    Passphrase,
    RotationTarget,
    SecretMeta,
    Vault,
    VaultNotCreated,
    VaultRef,
    system_keyring,
)
from palyra.vault.keys import KEY_ENV, PASSPHRASE_ENV
from palyra.vault.refs import check_scope

NEW_KEY_ENV = "PALYRA_VAULT_NEW_KEY"
NEW_PASSPHRASE_ENV = "PALYRA_VAULT_NEW_PASSPHRASE"

app = typer.Typer(
    help="Encrypted secrets: put, get, list, delete, rotate-key.",
    no_args_is_help=True,
    add_completion=False,
)

RefArg = Annotated[str, typer.Argument(help="Secret ref: <scope>/<name>, e.g. global/openai.")]
T = TypeVar("T")


def _parse_ref(text: str) -> VaultRef:
    try:
        return VaultRef.parse(text)
    except InvalidVaultRef as exc:
        fail(exc.envelope.message, 2)


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _run(
    db_url: str | None,
    action: Callable[[Vault], Awaitable[T]],
    config: Path | None = None,
    *,
    empty: Callable[[str], T] | None = None,
) -> T:
    """Open the store and vault, run ``action``, close; vault/store errors exit 1 (3 for a
    damaged store). With ``empty`` (commands that only read) a store or vault that does not
    exist yet is not created: ``empty(why)`` answers instead."""
    url = store_url(db_url, config)
    create = empty is None

    async def go() -> T:
        store: Store | None = None
        try:
            state = state_dir(create=create)
            store = await open_store(url, state_dir=state, create=create)
            keys = KeyResolver(state, environ=dict(os.environ), keyring=system_keyring())
            return await action(await Vault.open(store, keys, create=create))
        except (StoreMissing, VaultNotCreated) as exc:
            if empty is None:
                raise
            return empty(exc.envelope.message)
        finally:
            if store is not None:
                await store.aclose()

    try:
        return asyncio.run(go())
    except PalyraError as exc:
        fail_on(exc)


def _nothing_stored(ref: VaultRef) -> Callable[[str], NoReturn]:
    def answer(why: str) -> NoReturn:
        fail(f"there is no vault secret {ref} ({why}); add it with: palyra vault put {ref}")

    return answer


def _read_value(ref: VaultRef) -> str:
    if _stdin_is_tty():
        value: str = typer.prompt(
            f"Value for {ref}", hide_input=True, confirmation_prompt=True, err=True
        )
        return value
    value = sys.stdin.read()
    return value.removesuffix("\n").removesuffix("\r")


@app.command()
def put(ref: RefArg, db_url: DbUrlOpt = None, config: ConfigOpt = None) -> None:
    """Store a secret; the value comes from stdin when piped, else a hidden prompt."""
    vref = _parse_ref(ref)
    value = _read_value(vref)
    meta = _run(db_url, lambda vault: vault.put(vref, value), config)
    typer.echo(f"stored {meta.ref} (version {meta.version})")


@app.command()
def get(ref: RefArg, db_url: DbUrlOpt = None, config: ConfigOpt = None) -> None:
    """Print a secret's value (the only command that prints one)."""
    vref = _parse_ref(ref)
    typer.echo(_run(db_url, lambda vault: vault.get(vref), config, empty=_nothing_stored(vref)))


@app.command("list")
def list_secrets(
    scope: Annotated[
        str | None, typer.Option("--scope", help="Only this scope, e.g. agent:ops.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List secrets: refs, versions and timestamps, never values."""
    if scope is not None:
        try:
            check_scope(scope)
        except InvalidVaultRef as exc:
            fail(exc.envelope.message, 2)
    metas: list[SecretMeta] | None = _run(
        db_url, lambda vault: vault.list(scope), config, empty=lambda _why: None
    )
    if as_json:
        typer.echo(json.dumps([m.as_dict() for m in metas or []], indent=2))
        return
    if metas is None:
        typer.echo(
            "no secrets: nothing is stored yet; add one with: palyra vault put <scope>/<name>"
        )
        return
    if not metas:
        typer.echo("no secrets" + (f" in scope {scope}" if scope else ""))
        return
    width = max(len(str(m.ref)) for m in metas)
    for m in metas:
        updated = m.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        typer.echo(f"{m.ref!s:<{width}}  v{m.version:<4} updated {updated}")


@app.command()
def delete(ref: RefArg, db_url: DbUrlOpt = None, config: ConfigOpt = None) -> None:
    """Delete a secret."""
    vref = _parse_ref(ref)
    if not _run(db_url, lambda vault: vault.delete(vref), config, empty=lambda _why: False):
        fail(f"there is no vault secret {vref}; see: palyra vault list")
    typer.echo(f"deleted {vref}")


@app.command("rotate-key")
def rotate_key(
    to_env: Annotated[
        bool, typer.Option("--to-env", help=f"Use the base64 key in ${NEW_KEY_ENV}.")
    ] = False,
    to_passphrase: Annotated[
        bool,
        typer.Option(
            "--to-passphrase",
            help=f"Derive the key from ${NEW_PASSPHRASE_ENV}, else a hidden prompt.",
        ),
    ] = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Re-wrap every secret under a new master key (default: a new random vault.key)."""
    if to_env and to_passphrase:
        fail("choose one of --to-env and --to-passphrase", 2)
    key_file = KeyFile(state_dir() / "vault.key")
    target: RotationTarget
    if to_env:
        if not os.environ.get(NEW_KEY_ENV):
            fail(f"--to-env reads the new key from {NEW_KEY_ENV}, which is not set", 2)
        target = EnvKey(os.environ, NEW_KEY_ENV)
    elif to_passphrase:
        target = Passphrase(_new_passphrase(), where=PASSPHRASE_ENV)
    else:
        target = key_file

    async def rotate(vault: Vault) -> tuple[int, str, bool]:
        was_file = vault.key_source == str(key_file.path)
        return await vault.rotate_master_key(target), vault.key_id, was_file

    count, key_id, was_file = _run(db_url, rotate, config)
    typer.echo(f"re-wrapped {count} secret(s) under a new master key (key id {key_id})")
    if target is key_file:
        typer.echo(f"the key is in {key_file.path}")
        if os.environ.get(KEY_ENV):
            typer.echo(f"unset {KEY_ENV}: the vault now uses {key_file.path}", err=True)
        return
    if was_file and key_file.remove():
        typer.echo(f"removed the old key file {key_file.path}")
    if to_env:
        typer.echo(f"now set {KEY_ENV} to the value of {NEW_KEY_ENV}, then unset {NEW_KEY_ENV}")
    else:
        typer.echo(f"now set {PASSPHRASE_ENV} to the new passphrase")


def _new_passphrase() -> str:
    from_env = os.environ.get(NEW_PASSPHRASE_ENV)
    if from_env:
        return from_env
    if not _stdin_is_tty():
        fail(f"--to-passphrase needs {NEW_PASSPHRASE_ENV} or an interactive terminal", 2)
    value: str = typer.prompt(
        "New vault passphrase", hide_input=True, confirmation_prompt=True, err=True
    )
    return value


__all__ = ["app"]
