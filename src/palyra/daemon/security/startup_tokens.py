"""Tokens at daemon start: resolve ``[daemon] client_tokens``, mint the quickstart token, refuse
to expose an unauthenticated daemon.

Quickstart rule: on a loopback bind with no client token at all (none configured, none active in
the store), the daemon creates one, prints it once and writes it 0600 to
``<state_dir>/client_token`` so local clients (``palyra chat``) can read it. Only the local user
can read that file, and nothing else on the network can reach a loopback port, so the two-command
quickstart keeps working without ever serving unauthenticated. On any other bind the daemon
refuses to start until a token exists.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from palyra.config.schema import PalyraConfig
from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore
from palyra.model import FailureClass, PalyraError, remember_secret
from palyra.store import open_store
from palyra.vault import KeyResolver, Vault, resolve_secret_ref, system_keyring

LOCAL_TOKEN_FILE = "client_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_token_path(state_dir: Path) -> Path:
    return state_dir / LOCAL_TOKEN_FILE


def read_local_client_token(state_dir: Path) -> str | None:
    """The quickstart token the daemon wrote, for local clients; None when there is none."""
    try:
        return local_token_path(state_dir).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to a 0600 file, atomically, never leaving it readable by others."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class StartupTokens:
    """What the daemon accepts besides stored tokens, and the token minted now (if any)."""

    fixed: dict[str, TokenKind] = field(default_factory=dict, repr=False)
    minted: str | None = field(default=None, repr=False)
    token_file: Path | None = None


async def resolve_client_tokens(
    refs: list[str], *, state_dir: Path, store_url: str, environ: Mapping[str, str]
) -> dict[str, TokenKind]:
    """Each ``[daemon] client_tokens`` reference resolved; the vault is opened only if needed."""
    vault: Vault | None = None
    store = None
    try:
        if any(ref.startswith("vault:") for ref in refs):
            store = await open_store(store_url, state_dir=state_dir)
            keys = KeyResolver(state_dir, environ=dict(environ), keyring=system_keyring())
            vault = await Vault.open(store, keys)
        resolved: dict[str, TokenKind] = {}
        for ref in refs:
            try:
                resolved[await resolve_secret_ref(ref, vault, environ=environ)] = TokenKind.CLIENT
            except PalyraError as exc:
                raise PalyraError.of(
                    FailureClass.CONFIG,
                    f"[daemon] client_tokens: {exc.envelope.message}",
                ) from exc
        return resolved
    finally:
        if store is not None:
            await store.aclose()


async def prepare_tokens(
    config: PalyraConfig, *, host: str, state_dir: Path, environ: Mapping[str, str]
) -> StartupTokens:
    """Resolve configured tokens; mint the quickstart token or refuse a non-loopback bind."""
    store_url = config.storage.url
    fixed = await resolve_client_tokens(
        config.daemon.client_tokens, state_dir=state_dir, store_url=store_url, environ=environ
    )
    if fixed:
        return StartupTokens(fixed)
    store = await open_store(store_url, state_dir=state_dir, migrations=(TOKENS_SCHEMA,))
    try:
        tokens = TokenStore(store)
        if await tokens.has_active(TokenKind.CLIENT):
            return StartupTokens(fixed)
        if not is_loopback(host):
            raise PalyraError.of(
                FailureClass.CONFIG,
                f"refusing to listen on {host}, which is not a loopback address, with no client "
                "token: anyone who can reach it could use your providers. Create one with "
                "`palyra token create`, or set [daemon] client_tokens in palyra.toml, or bind "
                "to 127.0.0.1",
            )
        token, _ = await tokens.create(TokenKind.CLIENT, name="local quickstart")
    finally:
        await store.aclose()
    remember_secret(token)
    path = local_token_path(state_dir)
    write_private_file(path, token)
    return StartupTokens(fixed, minted=token, token_file=path)
