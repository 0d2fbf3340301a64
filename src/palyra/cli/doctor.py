"""``palyra doctor``: every part of a Palyra setup checked in one pass, each with a fix hint.

Checks never spend tokens (providers are probed by listing their models) and never create
state: a store or vault that does not exist yet is reported as such, not initialised.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx2
import sqlalchemy as sa
import typer

from palyra.auth.credentials import ProfileCredentialSource
from palyra.auth.doctor import Severity
from palyra.auth.registry import AuthProfileRegistry
from palyra.cli.common import EXIT_STATE_DAMAGED, ConfigOpt
from palyra.cli.models import FIX_HINTS
from palyra.config.discovery import discover_config
from palyra.config.loader import load_config
from palyra.config.problems import ConfigError
from palyra.config.schema import PalyraConfig
from palyra.model import PalyraError
from palyra.paths import state_dir as default_state_dir
from palyra.routing.assembly import build_runtime
from palyra.routing.discovery import ModelDiscovery, ProviderListing
from palyra.sharedstate import SharedStateLink
from palyra.store import (
    MigrationSet,
    Store,
    StoreCorrupt,
    expand_url,
    open_store,
)
from palyra.store.schema_status import (
    SchemaState,
    compare,
    newer_problem,
    recorded_versions,
    with_state,
)
from palyra.vault import KeyResolver, Vault, system_keyring
from palyra.vault.tables import vault_settings

HEALTH_TIMEOUT_S = 2.0


def known_schemas() -> tuple[MigrationSet, ...]:
    """Every component's migrations; the daemon's are imported only when the doctor runs."""
    from palyra.daemon.schemas import STORE_SCHEMAS

    return STORE_SCHEMAS


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report; ``hint`` says what to do when the status is not ok."""

    name: str
    status: Status
    detail: str
    hint: str = ""
    more: tuple[str, ...] = ()
    """Further detail lines (one config problem each), shown under the first."""


def render(checks: list[Check]) -> list[str]:
    """The report: ``STATUS  NAME  detail`` per check, then an indented fix line if any."""
    width = max((len(c.name) for c in checks), default=0)
    lines: list[str] = []
    for check in checks:
        lines.append(f"{check.status.value:<5} {check.name:<{width}}  {check.detail}")
        lines.extend(f"{'':<5} {'':<{width}}    {more}" for more in check.more)
        if check.hint and check.status is not Status.OK:
            lines.append(f"{'':<5} {'':<{width}}  fix: {check.hint}")
    return lines


def check_state_dir(path: Path) -> Check:
    """The state directory holds keys and tokens, so only its owner may read it."""
    if not path.exists():
        return Check("state dir", Status.OK, f"{path} (not created yet; made 0700 on first use)")
    if not path.is_dir():
        return Check(
            "state dir",
            Status.FAIL,
            f"{path} is not a directory",
            "move it aside, or set PALYRA_STATE_DIR to another place",
        )
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        return Check(
            "state dir",
            Status.FAIL,
            f"{path} is not readable and writable by this user",
            "chown it to this user, or set PALYRA_STATE_DIR to a directory you own",
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Check(
            "state dir",
            Status.WARN,
            f"{path} is mode {mode:o}; other users may read keys and tokens in it",
            f"chmod 700 {path}",
        )
    return Check("state dir", Status.OK, f"{path} (mode 700)")


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for other databases."""
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    return Path(parsed.database)


def schema_check(versions: dict[str, int], shown: str) -> Check:
    """Compare each component's recorded version with the one this Palyra knows."""
    statuses = compare(versions, known_schemas())
    newer = newer_problem(statuses, shown)
    if newer is not None:
        return Check(
            "store",
            Status.FAIL,
            newer,
            "upgrade Palyra, or point [storage] url at a database this version wrote",
        )
    summary = ", ".join(f"{c} v{v}" for c, v in sorted(versions.items())) or "empty"
    pending = with_state(statuses, SchemaState.PENDING)
    if pending and versions:
        return Check(
            "store",
            Status.WARN,
            f"{shown} (schema: {summary}); pending: {', '.join(p.describe() for p in pending)}",
            "run `palyra db upgrade` (PostgreSQL replicas refuse to start until then)",
        )
    return Check("store", Status.OK, f"{shown} (schema: {summary})")


async def _has_vault(store: Store) -> bool:
    async with store.connect() as conn:
        if not await conn.run_sync(lambda c: sa.inspect(c).has_table(vault_settings.name)):
            return False
        row = await conn.execute(
            sa.select(vault_settings.c.value).where(vault_settings.c.name == "key_id")
        )
        return row.first() is not None


def _listing_check(listing: ProviderListing) -> Check:
    name = f"provider {listing.provider_id}"
    error = listing.error
    if error is not None:
        return Check(
            name,
            Status.FAIL,
            f"{listing.kind}: {error.failure_class.value}: {error.message}",
            FIX_HINTS.get(error.failure_class, "see the message"),
        )
    if not listing.supported:
        return Check(
            name,
            Status.WARN,
            f"{listing.kind}: cannot list its models, so it was not probed",
            "send it one request (`palyra chat --model <id> hi`) to check it",
        )
    where = "local" if listing.kind == "deterministic" else f"{listing.latency_s * 1000:.0f} ms"
    return Check(
        name, Status.OK, f"{listing.kind}: reachable, {len(listing.models)} models, {where}"
    )


@dataclass
class _Setup:
    """What the store checks found, for the checks that build on them."""

    store: Store | None = None
    vault: Vault | None = None
    vault_broken: bool = False
    store_damaged: bool = False


async def _store_checks(config: PalyraConfig, states: Path, setup: _Setup) -> list[Check]:
    url = expand_url(config.storage.url, states)
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.exists():
        return [
            Check("store", Status.OK, f"{sqlite_file} (not created yet; made on first use)"),
            Check("vault", Status.OK, "no vault yet (created by the first `palyra vault put`)"),
        ]
    try:
        store = await open_store(url, state_dir=states)
    except StoreCorrupt as exc:
        setup.store_damaged = True
        return [
            Check(
                "store",
                Status.FAIL,
                exc.envelope.message,
                f"move {exc.path} aside and restore it from a backup (see above)",
            )
        ]
    except PalyraError as exc:
        return [
            Check(
                "store",
                Status.FAIL,
                exc.envelope.message,
                "fix [storage] url in palyra.toml, or restore the database from a backup",
            )
        ]
    setup.store = store
    checks = [schema_check(await recorded_versions(store), store.url)]
    if not await _has_vault(store):
        checks.append(Check("vault", Status.OK, "no secrets stored yet"))
        return checks
    keys = KeyResolver(states, environ=dict(os.environ), keyring=system_keyring())
    try:
        setup.vault = await Vault.open(store, keys)
    except PalyraError as exc:
        setup.vault_broken = True
        checks.append(
            Check(
                "vault",
                Status.FAIL,
                "the master key cannot be used",
                exc.envelope.message,
            )
        )
        return checks
    vault = setup.vault
    checks.append(Check("vault", Status.OK, f"key {vault.key_id} from {vault.key_source}"))
    return checks


async def _auth_check(setup: _Setup) -> Check:
    if setup.vault is None:
        if setup.vault_broken:
            return Check(
                "auth profiles", Status.WARN, "not checked: the vault cannot be opened",
                "fix the vault first (see above)",
            )  # fmt: skip
        return Check("auth profiles", Status.OK, "none (no vault)")
    registry = AuthProfileRegistry(setup.vault.store, setup.vault)
    profiles = await registry.all()
    findings = await registry.doctor()
    errors = [f for f in findings if f.severity is Severity.ERROR]
    warnings = [f for f in findings if f.severity is Severity.WARNING]
    detail = f"{len(profiles)} profiles, {len(errors)} errors, {len(warnings)} warnings"
    worst = errors or warnings
    if not worst:
        return Check("auth profiles", Status.OK, detail)
    first = worst[0]
    return Check(
        "auth profiles",
        Status.FAIL if errors else Status.WARN,
        f"{detail}; {first.message}",
        f"{first.hint}  (all findings: `palyra auth profiles doctor`)",
    )


async def _provider_checks(config: PalyraConfig, setup: _Setup) -> list[Check]:
    profiles = None
    if setup.vault is not None:
        profiles = ProfileCredentialSource(AuthProfileRegistry(setup.vault.store, setup.vault))
    try:
        async with build_runtime(config, vault=setup.vault, profiles=profiles) as runtime:
            listings = await ModelDiscovery(runtime).discover()
    except PalyraError as exc:
        return [
            Check(
                "providers",
                Status.FAIL,
                exc.envelope.message,
                FIX_HINTS.get(exc.envelope.failure_class, "see the message"),
            )
        ]
    return [_listing_check(listing) for listing in listings]


async def shared_state_check(config: PalyraConfig) -> Check:
    """Where state replicas must agree on lives: in Redis (reachable or not) or per process."""
    link = SharedStateLink.from_url(config.storage.redis_url)
    if link is None:
        return Check(
            "shared state",
            Status.OK,
            "per process (no [storage] redis_url): breakers, cooldowns, leases and rate windows "
            "are each process's own; a revoked token is refused within 30 s",
        )
    try:
        seconds = await asyncio.wait_for(link.ping(), HEALTH_TIMEOUT_S)
    except link.errors as exc:  # TimeoutError (asyncio's) is one of them
        return Check(
            "shared state",
            Status.WARN,
            f"Redis at {link.shown} does not answer ({type(exc).__name__}); the daemon serves on "
            "with per-process state until it does",
            f"start Redis at {link.shown}, or fix [storage] redis_url in palyra.toml",
        )
    finally:
        await link.aclose()
    return Check(
        "shared state",
        Status.OK,
        f"Redis at {link.shown} (reachable, {seconds * 1000:.1f} ms): breakers, cooldowns, "
        "leases, rate windows and token revocations are shared by every replica",
    )


async def daemon_check(bind: str, client: httpx2.AsyncClient) -> Check:
    """A daemon that is not running is only a warning: the setup itself can still be fine."""
    url = f"http://{bind}/healthz"
    try:
        response = await client.get(url, timeout=HEALTH_TIMEOUT_S)
    except httpx2.TransportError:
        return Check(
            "daemon", Status.WARN, f"not running at {bind}", "start it with `palyra serve`"
        )
    if response.status_code != 200:
        return Check(
            "daemon",
            Status.FAIL,
            f"{url} answered HTTP {response.status_code}",
            "check that the process on that port is Palyra, or change [daemon] bind",
        )
    return Check("daemon", Status.OK, f"running at {bind}")


async def run_checks(config_path: Path | None, setup: _Setup | None = None) -> list[Check]:
    """Every check in order; the ones that need a valid config are skipped without one."""
    states = default_state_dir(create=False)
    setup = setup or _Setup()
    checks: list[Check] = []
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        location = discover_config(config_path, os.environ)
        count = len(exc.problems)
        checks.append(
            Check(
                "config",
                Status.FAIL,
                f"{count} problem{'s' if count != 1 else ''} in {location.path or location.reason}:",
                "fix palyra.toml as described (`palyra config check` shows every problem)",
                tuple(str(p) for p in exc.problems),
            )
        )
        checks.append(check_state_dir(states))
        return checks
    config = loaded.config
    checks.append(Check("config", Status.OK, str(loaded.path or "built-in defaults")))
    checks.append(check_state_dir(states))
    checks.append(await shared_state_check(config))
    try:
        checks += await _store_checks(config, states, setup)
        checks.append(await _auth_check(setup))
        checks += await _provider_checks(config, setup)
    finally:
        if setup.store is not None:
            await setup.store.aclose()
    async with httpx2.AsyncClient() as client:
        checks.append(await daemon_check(config.daemon.bind, client))
    return checks


def doctor(
    config: ConfigOpt = None,
) -> None:
    """Check config, state, store, vault, auth profiles, providers and the daemon; exit 1 on
    any failure, 3 when the store is damaged."""
    setup = _Setup()
    checks = asyncio.run(run_checks(config, setup))
    for line in render(checks):
        typer.echo(line)
    failed = [c for c in checks if c.status is Status.FAIL]
    if failed:
        typer.echo(f"{len(failed)} of {len(checks)} checks failed.", err=True)
        raise typer.Exit(EXIT_STATE_DAMAGED if setup.store_damaged else 1)
