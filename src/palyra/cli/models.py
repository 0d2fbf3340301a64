"""``palyra models list|test|explain``: the configured models, what upstreams offer, free probes,
and where a request to a model or routing group would go.

``test`` lists the provider's models with the model's credential: an authenticated call that
costs no tokens, so it proves the key, the base URL and the network without spending money.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import orjson
import typer

from palyra.auth.credentials import ProfileCredentialSource
from palyra.auth.registry import AuthProfileRegistry
from palyra.cli.common import ConfigOpt, fail
from palyra.config.loader import load_config
from palyra.config.problems import ConfigError
from palyra.config.schema import ModelConfig, PalyraConfig, ProviderConfig
from palyra.model import FailureClass, PalyraError
from palyra.model.context import TASK_CLASSES, TaskClass, task_class_problem
from palyra.paths import state_dir
from palyra.pricing import pricing_table
from palyra.pricing.routing_prices import TablePrices
from palyra.routing.assembly import Runtime, build_runtime
from palyra.routing.clock import SystemClock
from palyra.routing.config_credentials import KEYED_KINDS
from palyra.routing.discovery import ModelDiscovery, ProbeResult, ProviderListing
from palyra.routing.explain import explain_route
from palyra.routing.groups import GroupRouter
from palyra.routing.health import HealthTracker
from palyra.routing.leases import LeaseManager
from palyra.routing.registry import ModelRegistry
from palyra.store import Store, open_store
from palyra.vault import KeyResolver, Vault, system_keyring

app = typer.Typer(help="List configured models and probe their providers.", no_args_is_help=True)

T = TypeVar("T")

FIX_HINTS: dict[FailureClass, str] = {
    FailureClass.AUTH_INVALID: "the key was refused; check the secret behind api_key, or "
    "reconnect the profile with `palyra auth <openai|anthropic> api-key`",
    FailureClass.AUTH_EXPIRED: "the token expired; run `palyra auth openai refresh <profile>` "
    "or log in again",
    FailureClass.PERMISSION_DENIED: "the key has no access to this API; check its project or "
    "organisation permissions",
    FailureClass.RATE_LIMITED: "the key works but is rate limited right now; try again later",
    FailureClass.QUOTA_EXHAUSTED: "the account is out of quota; check its billing",
    FailureClass.CONNECTION: "nothing answered at base_url; check the URL, the network and "
    "that the server is running",
    FailureClass.TIMEOUT: "the server did not answer in time; check base_url or raise "
    "timeout_ms on the provider",
    FailureClass.UPSTREAM_UNAVAILABLE: "the provider answered with a server error; try again "
    "later or check its status page",
    FailureClass.NOT_FOUND: "the models endpoint was not found; check that base_url has the "
    "right API prefix (OpenAI-style servers usually end in /v1)",
    FailureClass.MALFORMED_RESPONSE: "the answer was not a model list; check that base_url "
    "points at the right API",
    FailureClass.CONFIG: "fix palyra.toml (or the secret it names) as the message says",
}


def _load(path: Path | None) -> PalyraConfig:
    try:
        return load_config(path).config
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


def _needs_store(provider: ProviderConfig) -> bool:
    """Whether this provider's credential lives in the vault or in auth profiles."""
    if provider.kind == "deterministic":
        return False
    if provider.api_key:
        return provider.api_key.startswith("vault:")
    return bool(provider.profile_ids()) or provider.kind in KEYED_KINDS


@asynccontextmanager
async def _runtime(config: PalyraConfig) -> AsyncIterator[Runtime]:
    """A runtime; the store and vault are opened only when some provider needs them."""
    store: Store | None = None
    vault: Vault | None = None
    profiles: ProfileCredentialSource | None = None
    if any(_needs_store(p) for p in config.model_provider.providers):
        try:
            state = state_dir()
            store = await open_store(config.storage.url, state_dir=state)
            keys = KeyResolver(state, environ=dict(os.environ), keyring=system_keyring())
            vault = await Vault.open(store, keys)
            profiles = ProfileCredentialSource(AuthProfileRegistry(store, vault))
        except PalyraError as exc:
            typer.echo(
                f"warning: the vault is not available ({exc.envelope.message}); providers "
                "using vault: keys or auth profiles will fail",
                err=True,
            )
    try:
        async with build_runtime(config, vault=vault, profiles=profiles) as runtime:
            yield runtime
    finally:
        if store is not None:
            await store.aclose()


def _run(config: PalyraConfig, action: Callable[[Runtime], Awaitable[T]]) -> T:
    async def go() -> T:
        async with _runtime(config) as runtime:
            return await action(runtime)

    try:
        return asyncio.run(go())
    except PalyraError as exc:
        fail(exc.envelope.message)


def _model_row(model: ModelConfig) -> dict[str, Any]:
    return {
        "id": model.id,
        "provider": model.provider,
        "upstream_model": model.upstream_model,
        "capabilities": list(model.capabilities),
        "context_window": model.context_window,
        "fallbacks": list(model.fallbacks),
        "aliases": list(model.aliases),
        "cost_tier": model.cost_tier,
        "latency_tier": model.latency_tier,
    }


def _listing_row(listing: ProviderListing) -> dict[str, Any]:
    error = listing.error
    return {
        "id": listing.provider_id,
        "kind": listing.kind,
        "ok": listing.ok,
        "supported": listing.supported,
        "latency_ms": round(listing.latency_s * 1000, 1),
        "models": [m.id for m in listing.models],
        "error": None
        if error is None
        else {"failure_class": error.failure_class.value, "message": error.message},
    }


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _listed_mark(listings: dict[str, ProviderListing], model: ModelConfig) -> str:
    found = listings[model.provider].lists(model.upstream_model)
    return "?" if found is None else ("yes" if found else "no")


@app.command(name="list")
def list_models(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    discover: Annotated[
        bool, typer.Option("--discover", help="Also ask each provider which models it offers.")
    ] = False,
) -> None:
    """List configured models; with --discover, the models each upstream reports too."""
    cfg = _load(config)
    models = list(cfg.model_provider.models)
    listings: dict[str, ProviderListing] = {}
    if discover:

        async def fetch(runtime: Runtime) -> list[ProviderListing]:
            return await ModelDiscovery(runtime).discover()

        listings = {listing.provider_id: listing for listing in _run(cfg, fetch)}
    if as_json:
        document: dict[str, Any] = {
            "models": [_model_row(m) for m in models],
            "routing_groups": [
                {"id": g.id, "strategy": g.strategy, "members": list(g.members)}
                for g in cfg.model_provider.routing_groups
            ],
        }
        if discover:
            document["providers"] = [_listing_row(x) for x in listings.values()]
        typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    head = ["ID", "PROVIDER", "UPSTREAM", "CAPABILITIES", "CONTEXT", "FALLBACKS"]
    rows = [head + (["LISTED"] if discover else [])]
    for m in models:
        row = [
            m.id,
            m.provider,
            m.upstream_model,
            ",".join(m.capabilities),
            str(m.context_window or "-"),
            ",".join(m.fallbacks) or "-",
        ]
        rows.append(row + ([_listed_mark(listings, m)] if discover else []))
    for line in _table(rows):
        typer.echo(line)
    groups = cfg.model_provider.routing_groups
    if groups:
        typer.echo("")
        group_rows = [["GROUP", "STRATEGY", "MEMBERS"]]
        group_rows += [[g.id, g.strategy, ",".join(g.members)] for g in groups]
        for line in _table(group_rows):
            typer.echo(line)
    for listing in listings.values():
        typer.echo("")
        where = f"provider {listing.provider_id} ({listing.kind})"
        if listing.error is not None:
            typer.echo(
                f"{where}: error {listing.error.failure_class.value}: {listing.error.message}"
            )
        elif not listing.supported:
            typer.echo(f"{where}: cannot list its models")
        else:
            names = ", ".join(m.id for m in listing.models) or "none"
            typer.echo(f"{where}: {len(listing.models)} models: {names}")


def _probe_line(result: ProbeResult) -> list[str]:
    model, listing = result.model, result.listing
    where = f"{model.id} ({model.provider}, {model.upstream_model})"
    if listing.error is None:
        latency = (
            "local" if listing.kind == "deterministic" else f"{listing.latency_s * 1000:.0f} ms"
        )
        lines = [f"ok    {where}  {latency}"]
        if result.listed is False:
            lines.append(
                f"      note: the provider does not list {model.upstream_model!r}; check the "
                "model name if requests to it fail"
            )
        return lines
    error = listing.error
    hint = FIX_HINTS.get(error.failure_class, "see the message above")
    return [
        f"FAIL  {where}  {error.failure_class.value}: {error.message}",
        f"      fix: {hint}",
    ]


@app.command(name="test")
def test_models(
    model_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="Model id or alias (default: all).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Probe providers without spending tokens (an authenticated model listing); exit 1 on
    any failure."""
    cfg = _load(config)

    async def probe(runtime: Runtime) -> list[ProbeResult]:
        return await ModelDiscovery(runtime).probe([model_id] if model_id else None)

    results = _run(cfg, probe)
    for result in results:
        for line in _probe_line(result):
            typer.echo(line)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        typer.echo(f"{failed} of {len(results)} probes failed.", err=True)
        raise typer.Exit(1)


@app.command(name="explain")
def explain_model(
    model_id: Annotated[str, typer.Argument(metavar="MODEL", help="Model id, alias or group.")],
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="Task class of the request (as x-palyra-task): " + ", ".join(TASK_CLASSES) + ".",
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Where a chat request to MODEL would go, in order, and why (no request is sent).

    A routing group is decided as a daemon that just started would decide it: no leases held
    and no latency measured yet (a live decision is in each answer's x-palyra-route header)."""
    cfg = _load(config)
    if task is not None and (problem := task_class_problem(task)) is not None:
        fail(f"--task: {problem}")
    mp = cfg.model_provider
    clock = SystemClock()
    try:
        registry = ModelRegistry.from_config(mp)
        prices = TablePrices(pricing_table(cfg.pricing))
        groups = GroupRouter(
            registry, LeaseManager(clock), HealthTracker(), clock, random.Random(), prices
        )
        found = asyncio.run(
            explain_route(
                groups,
                model_id,
                task=cast("TaskClass | None", task),
                task_source="--task" if task else None,
            )
        )
    except PalyraError as exc:
        fail(exc.envelope.message)
    if as_json:
        typer.echo(orjson.dumps(found.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    for line in found.lines():
        typer.echo(line)
