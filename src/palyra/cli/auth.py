"""``palyra auth``: connect API keys and manage auth profiles.

Keys come from ``--from-env VAR``, stdin when piped, or a hidden prompt, never from argv, and are
never printed. The database is ``--db-url``, else ``[storage] url`` of the config
(``$PALYRA_CONFIG``), in the state dir (``$PALYRA_STATE_DIR``). Errors go to stderr with exit
code 1; bad arguments exit with 2; ``doctor`` exits 1 when it finds an error.

``openai_app`` is the ``palyra auth openai`` group; the OAuth commands (login, refresh) join it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from palyra.auth.api_key import (
    ANTHROPIC_BASE_URL,
    OPENAI_BASE_URL,
    connect_anthropic_api_key,
    connect_openai_api_key,
)
from palyra.auth.doctor import Severity
from palyra.auth.records import (
    GLOBAL_SCOPE,
    PROVIDERS,
    AuthProfileRecord,
    ProfileError,
    agent_scope,
    normalize_profile_id,
)
from palyra.auth.registry import AuthProfileRegistry
from palyra.cli.auth_selection import (
    Explanation,
    Target,
    TargetError,
    explain_api_key,
    explain_named,
    explain_ranked,
    order_problem,
    resolve_target,
    with_spread,
)
from palyra.cli.common import ConfigOpt, DbUrlOpt, fail, fail_on, read_config, store_url
from palyra.model import PalyraError
from palyra.paths import state_dir
from palyra.store import DEFAULT_STORE_URL, Store, StoreMissing, open_store
from palyra.vault import KeyResolver, Vault, VaultNotCreated, system_keyring

T = TypeVar("T")

app = typer.Typer(
    help="Auth profiles: connect API keys, list, order, diagnose.",
    no_args_is_help=True,
    add_completion=False,
)
openai_app = typer.Typer(
    help="OpenAI (and OpenAI-compatible) credentials.", no_args_is_help=True, add_completion=False
)
anthropic_app = typer.Typer(
    help="Anthropic credentials.", no_args_is_help=True, add_completion=False
)
profiles_app = typer.Typer(
    help="List, show, delete, order and diagnose profiles.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(openai_app, name="openai")
app.add_typer(anthropic_app, name="anthropic")
app.add_typer(profiles_app, name="profiles")

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Agent = Annotated[
    str | None, typer.Option("--agent", help="Agent id: scope the profile to this agent.")
]
OpenAIProfile = Annotated[
    str, typer.Option("--profile", help="Profile id to save the key as, e.g. openai-default.")
]
AnthropicProfile = Annotated[
    str, typer.Option("--profile", help="Profile id to save the key as, e.g. anthropic-default.")
]
ProfileArg = Annotated[str, typer.Argument(help="Profile id.")]
Name = Annotated[str | None, typer.Option("--name", help="Display name.")]
FromEnv = Annotated[
    str | None, typer.Option("--from-env", help="Read the key from this environment variable.")
]


def run_registry(
    db_url: str | None,
    action: Callable[[AuthProfileRegistry], Awaitable[T]],
    config: Path | None = None,
    *,
    empty: Callable[[], T] | None = None,
) -> T:
    """Open store, vault and registry, run ``action``, close; Palyra errors exit 1 (3 for a
    damaged store). With ``empty`` (commands that only read) a store or vault that does not
    exist yet is not created: ``empty()`` answers instead."""
    url = store_url(db_url, config)
    create = empty is None

    async def go() -> T:
        store: Store | None = None
        try:
            state = state_dir(create=create)
            store = await open_store(url or DEFAULT_STORE_URL, state_dir=state, create=create)
            keys = KeyResolver(state, environ=dict(os.environ), keyring=system_keyring())
            vault = await Vault.open(store, keys, create=create)
            return await action(AuthProfileRegistry(store, vault))
        except (StoreMissing, VaultNotCreated):
            if empty is None:
                raise
            return empty()
        finally:
            if store is not None:
                await store.aclose()

    try:
        return asyncio.run(go())
    except PalyraError as exc:
        fail_on(exc)


CONNECT_HINT = "connect one with: palyra auth openai api-key --profile ID"


def _nothing_stored(profile_id: str) -> Callable[[], NoReturn]:
    def answer() -> NoReturn:
        fail(f"there is no auth profile {profile_id!r} (nothing is stored yet); {CONNECT_HINT}")

    return answer


def _profile_id(text: str) -> str:
    try:
        return normalize_profile_id(text)
    except ProfileError as exc:
        fail(exc.envelope.message, 2)


def _scope(agent: str | None) -> str:
    if agent is None:
        return GLOBAL_SCOPE
    try:
        return agent_scope(agent)
    except ProfileError as exc:
        fail(exc.envelope.message, 2)


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def read_secret(label: str, from_env: str | None) -> str:
    """A secret from ``$from_env``, piped stdin, or a hidden prompt; empty is a usage error."""
    if from_env is not None:
        value = os.environ.get(from_env)
        if value is None:
            fail(f"--from-env {from_env}: the environment variable {from_env} is not set", 2)
    elif _stdin_is_tty():
        value = typer.prompt(label, hide_input=True, err=True)
    else:
        value = sys.stdin.read()
    value = value.strip()
    if not value:
        fail(f"{label} is empty; pipe it on stdin, use --from-env VAR, or type it at the prompt", 2)
    return value


def _connected(record: AuthProfileRecord, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(record.public_dict(), indent=2))
        return
    typer.echo(
        f"connected profile {record.profile_id} ({record.provider}, {record.scope}) at "
        f"{record.base_url}; the key is in the vault at {record.credential.refs()[0]}"
    )


@openai_app.command("api-key")
def openai_api_key(
    profile: OpenAIProfile,
    base_url: Annotated[str, typer.Option("--base-url", help="API root.")] = OPENAI_BASE_URL,
    name: Name = None,
    agent: Agent = None,
    from_env: FromEnv = None,
    compatible: Annotated[
        bool, typer.Option("--compatible", help="An OpenAI-compatible server, not OpenAI.")
    ] = False,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow a private-network base URL.")
    ] = False,
    as_json: Json = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check an OpenAI API key against GET {base-url}/models, then store it (or rotate it)."""
    pid, scope = _profile_id(profile), _scope(agent)
    key = read_secret("OpenAI API key", from_env)
    record = run_registry(
        db_url,
        lambda registry: connect_openai_api_key(
            registry,
            profile_id=pid,
            api_key=key,
            base_url=base_url,
            display_name=name,
            scope=scope,
            compatible=compatible,
            allow_private=allow_private,
        ),
        config,
    )
    _connected(record, as_json)


@anthropic_app.command("api-key")
def anthropic_api_key(
    profile: AnthropicProfile,
    base_url: Annotated[str, typer.Option("--base-url", help="API root.")] = ANTHROPIC_BASE_URL,
    name: Name = None,
    agent: Agent = None,
    from_env: FromEnv = None,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow a private-network base URL.")
    ] = False,
    as_json: Json = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check an Anthropic API key against GET {base-url}/v1/models, then store it."""
    pid, scope = _profile_id(profile), _scope(agent)
    key = read_secret("Anthropic API key", from_env)
    record = run_registry(
        db_url,
        lambda registry: connect_anthropic_api_key(
            registry,
            profile_id=pid,
            api_key=key,
            base_url=base_url,
            display_name=name,
            scope=scope,
            allow_private=allow_private,
        ),
        config,
    )
    _connected(record, as_json)


PROVIDER_HELP = (
    "A provider id from palyra.toml, or a profile kind (openai | anthropic | openai_compatible) "
    "when at most one configured provider has it."
)


def _provider(text: str) -> str:
    if text not in PROVIDERS:
        fail(f"unknown provider {text!r}; use one of: {', '.join(PROVIDERS)}", 2)
    return text


@profiles_app.command("list")
def list_profiles(
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider.")] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only profiles this agent can use.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 100,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after this id.")] = None,
    as_json: Json = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List profiles (vault refs and health, never secrets)."""
    if provider is not None:
        _provider(provider)
    if agent is not None:
        _scope(agent)
    page = run_registry(
        db_url,
        lambda r: r.list(provider=provider, agent_id=agent, limit=limit, cursor=cursor),
        config,
        empty=lambda: None,
    )
    if page is None:
        if as_json:
            typer.echo(json.dumps({"items": [], "next_cursor": None}, indent=2))
        else:
            typer.echo(f"no auth profiles: nothing is stored yet; {CONNECT_HINT}")
        return
    if as_json:
        body = {"items": [p.public_dict() for p in page.items], "next_cursor": page.next_cursor}
        typer.echo(json.dumps(body, indent=2))
        return
    if not page.items:
        typer.echo(f"no auth profiles; {CONNECT_HINT}")
        return
    width = max(len(p.profile_id) for p in page.items)
    for p in page.items:
        typer.echo(
            f"{p.profile_id:<{width}}  {p.provider:<17} {p.credential_kind:<7} "
            f"{p.scope:<16} order {p.order:<3} {p.health.value}"
        )
    if page.next_cursor:
        typer.echo(f"more: palyra auth profiles list --cursor {page.next_cursor}")


@profiles_app.command("show")
def show(
    profile_id: ProfileArg, as_json: Json = False, db_url: DbUrlOpt = None, config: ConfigOpt = None
) -> None:
    """Show one profile."""
    pid = _profile_id(profile_id)
    record = run_registry(db_url, lambda r: r.get(pid), config, empty=_nothing_stored(pid))
    data = record.public_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                typer.echo(f"{key}.{sub}: {inner}")
        else:
            typer.echo(f"{key}: {value}")


@profiles_app.command("delete")
def delete(profile_id: ProfileArg, db_url: DbUrlOpt = None, config: ConfigOpt = None) -> None:
    """Delete a profile and its vault secrets."""
    pid = _profile_id(profile_id)
    if not run_registry(db_url, lambda r: r.delete(pid), config, empty=lambda: False):
        fail(f"there is no auth profile {pid!r}; see: palyra auth profiles list")
    typer.echo(f"deleted profile {pid} and its vault secrets")


@profiles_app.command("order")
def order(
    provider: Annotated[str, typer.Argument(help=PROVIDER_HELP)],
    profile_ids: Annotated[list[str], typer.Argument(help="Profile ids, first = preferred.")],
    agent: Annotated[
        str | None, typer.Option("--agent", help="Order this agent's own profiles.")
    ] = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Set which profiles a provider tries first (its kind's profiles, ranked by order)."""
    target = _target(provider, config)
    problem = order_problem(target)
    if problem is not None:
        fail(problem)
    ids = [_profile_id(p) for p in profile_ids]
    if agent is not None:
        _scope(agent)
    records = run_registry(db_url, lambda r: r.set_order(target.kind, ids, agent_id=agent), config)
    typer.echo("order: " + ", ".join(r.profile_id for r in records))


@profiles_app.command("cooldown-clear")
def cooldown_clear(
    profile_id: ProfileArg, db_url: DbUrlOpt = None, config: ConfigOpt = None
) -> None:
    """Make a cooling-down or needs-reauth profile usable again now."""
    pid = _profile_id(profile_id)
    record = run_registry(db_url, lambda r: r.clear_cooldown(pid), config)
    typer.echo(f"profile {record.profile_id} is {record.health.value} again")


@profiles_app.command("doctor")
def doctor(
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only profiles this agent can use.")
    ] = None,
    as_json: Json = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Find broken profiles and print the command that fixes each."""
    if agent is not None:
        _scope(agent)
    findings = run_registry(db_url, lambda r: r.doctor(agent_id=agent), config, empty=lambda: None)
    if findings is None:
        if as_json:
            typer.echo("[]")
        else:
            typer.echo(f"no auth profiles: nothing is stored yet; {CONNECT_HINT}")
        return
    if as_json:
        typer.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    elif not findings:
        typer.echo("all auth profiles look healthy")
    for f in [] if as_json else findings:
        typer.echo(f"{f.severity.value:<7} {f.message}\n        fix: {f.hint}")
    if any(f.severity is Severity.ERROR for f in findings):
        raise typer.Exit(1)


@profiles_app.command("explain-selection")
def explain_selection(
    provider: Annotated[str, typer.Argument(help=PROVIDER_HELP)],
    agent: Annotated[str | None, typer.Option("--agent", help="As seen by this agent.")] = None,
    as_json: Json = False,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Which credential would serve PROVIDER now (its api_key, or which profile and why each
    candidate was or was not chosen); exit 1 when none is usable."""
    target = _target(provider, config)
    if agent is not None:
        _scope(agent)
    explanation = with_spread(_explain(target, agent, db_url, config))
    if as_json:
        typer.echo(json.dumps(explanation.as_dict(), indent=2, default=_json_default))
    else:
        typer.echo(explanation.headline(agent))
        for line in explanation.lines:
            typer.echo(f"  {line}")
    if not explanation.usable:
        raise typer.Exit(1)


def _target(text: str, config: Path | None) -> Target:
    providers = read_config(config, "its providers").model_provider.providers
    try:
        return resolve_target(text, providers)
    except TargetError as exc:
        fail(str(exc), 2)


def _explain(
    target: Target, agent: str | None, db_url: str | None, config: Path | None
) -> Explanation:
    provider, environ = target.provider, dict(os.environ)
    if provider is not None and provider.kind == "deterministic":
        note = "deterministic: answers locally, no credential needed"
        return Explanation(target, "none_needed", "no key", True, (note,))
    if provider is not None and provider.api_key:
        if not provider.api_key.startswith("vault:"):  # env: and file: need no store
            return asyncio.run(explain_api_key(target, None, environ))
        return run_registry(db_url, lambda r: explain_api_key(target, r.vault, environ), config)
    if provider is not None and provider.profile_ids():
        named = provider.profile_ids()

        async def by_name(registry: AuthProfileRegistry) -> Explanation:
            found = await registry.find_many(named)
            return explain_named(target, found, agent, registry.now())

        return run_registry(db_url, by_name, config)

    async def ranked(registry: AuthProfileRegistry) -> Explanation:
        return explain_ranked(target, await registry.explain_selection(target.kind, agent))

    return run_registry(db_url, ranked, config)


def _json_default(value: Any) -> str:
    return str(value)


__all__ = [
    "anthropic_app",
    "app",
    "fail",
    "openai_app",
    "profiles_app",
    "read_secret",
    "run_registry",
]


# OpenAI OAuth sign-in and refresh live in their own module (palyra.cli.auth_oauth).
from palyra.cli import auth_oauth  # noqa: E402

openai_app.command("login")(auth_oauth.login)
openai_app.command("refresh")(auth_oauth.refresh)
