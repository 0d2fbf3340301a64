"""``palyra auth openai login`` and ``palyra auth openai refresh``.

``login`` runs a one-shot callback listener on 127.0.0.1 (port 1455 by default, the loopback
redirect OpenAI allows for its CLI clients), prints the authorization URL, opens a browser
unless ``--no-browser``, and waits until the sign-in finishes or the attempt expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import webbrowser
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

import httpx2
import typer

from palyra.auth.oauth import (
    CallbackResult,
    complete_openai_oauth_callback,
    start_openai_oauth_attempt,
)
from palyra.auth.oauth_config import DEFAULT_CLIENT_ID, OpenAIOAuthConfig
from palyra.auth.oauth_profile import DEFAULT_OAUTH_PROFILE_ID
from palyra.auth.pkce import generate_state
from palyra.auth.refresh import refresh_openai_profile
from palyra.auth.registry import AuthProfileRegistry
from palyra.cli.common import ConfigOpt, DbUrlOpt
from palyra.model import PalyraError
from palyra.providers.upstream.guard import make_upstream_client

DEFAULT_CALLBACK_PORT = 1455
CALLBACK_PATH = "/auth/callback"
_MAX_REQUEST_BYTES = 16 * 1024

Handler = Callable[[dict[str, str]], Awaitable[CallbackResult]]


def open_browser(url: str) -> bool:
    """The seam tests replace to act as the user's browser."""
    return webbrowser.open(url)


class CallbackListener:
    """A tiny HTTP/1.1 listener that hands ``GET /auth/callback`` queries to a handler."""

    def __init__(self, handle: Handler) -> None:
        self._handle = handle
        self.done: asyncio.Future[CallbackResult] = asyncio.get_running_loop().create_future()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        target = head.split(b"\r\n", 1)[0].split(b" ")
        parts = urlsplit(target[1].decode("latin-1") if len(target) == 3 else "")
        if target[0] != b"GET" or parts.path != CALLBACK_PATH:
            await _respond(writer, 404, "<!doctype html><title>Not found</title>")
            return
        result = await self._handle(dict(parse_qsl(parts.query)))
        await _respond(writer, result.http_status, result.html)
        # An unknown state (a stray or forged request) must not end the wait.
        if result.attempt_id is not None and result.http_status != 403 and not self.done.done():
            self.done.set_result(result)


async def _respond(writer: asyncio.StreamWriter, status: int, html: str) -> None:
    body = html.encode("utf-8")
    writer.write(
        f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Cache-Control: no-store\r\n"
        "Referrer-Policy: no-referrer\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def _login(
    registry: AuthProfileRegistry,
    *,
    config: OpenAIOAuthConfig,
    profile_id: str,
    port: int,
    browser: bool,
) -> CallbackResult:
    session_id = generate_state()
    redirect_uri = f"http://localhost:{port}{CALLBACK_PATH}"
    async with make_upstream_client(allow_private=False, timeout_s=10.0) as client:

        async def handle(query: dict[str, str]) -> CallbackResult:
            return await complete_openai_oauth_callback(
                registry.store,
                registry,
                registry.vault,
                query=query,
                session_id=session_id,
                client=client,
                clock=time.time,
            )

        listener = CallbackListener(handle)
        try:
            server = await asyncio.start_server(
                listener.serve, "127.0.0.1", port, limit=_MAX_REQUEST_BYTES
            )
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot listen on 127.0.0.1:{port} for the sign-in callback ({exc.strerror}); "
                "close the program using it or pass --port"
            ) from None
        async with server:
            started = await start_openai_oauth_attempt(
                registry.store,
                redirect_uri=redirect_uri,
                session_id=session_id,
                config=config,
                clock=time.time,
                profile_id=profile_id,
            )
            typer.echo(f"Open this URL to sign in to OpenAI:\n\n  {started.authorization_url}\n")
            if browser and not open_browser(started.authorization_url):
                typer.echo("(no browser could be opened; open the URL yourself)", err=True)
            typer.echo(f"Waiting for the sign-in on {redirect_uri} ...", err=True)
            try:
                return await asyncio.wait_for(
                    asyncio.shield(listener.done), started.expires_at - time.time()
                )
            except TimeoutError:
                raise typer.BadParameter(
                    "the sign-in was not finished within 10 minutes; run the command again"
                ) from None


def login(
    profile: Annotated[
        str, typer.Option("--profile", help="Profile id to save the sign-in as.")
    ] = DEFAULT_OAUTH_PROFILE_ID,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the URL; do not open a browser.")
    ] = False,
    client_id: Annotated[
        str, typer.Option("--client-id", help="OAuth client id.")
    ] = DEFAULT_CLIENT_ID,
    issuer: Annotated[
        str | None,
        typer.Option("--issuer", help="Another issuer (endpoints <issuer>/oauth/authorize|token)."),
    ] = None,
    validate_url: Annotated[
        str | None,
        typer.Option(
            "--validate-url",
            help="API root whose GET /models checks the new token (default: OpenAI's; none "
            "with --issuer).",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", help="Loopback port of the callback listener.")
    ] = DEFAULT_CALLBACK_PORT,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Sign in to OpenAI in a browser (OAuth with PKCE) and save the tokens as a profile."""
    from palyra.cli.auth import _profile_id, run_registry
    from palyra.cli.common import fail

    pid = _profile_id(profile)
    try:
        if issuer is None:
            oauth = OpenAIOAuthConfig(client_id=client_id)
            if validate_url is not None:
                oauth = OpenAIOAuthConfig(client_id=client_id, validation_base_url=validate_url)
        else:
            oauth = OpenAIOAuthConfig.for_issuer(
                issuer, client_id=client_id, validation_base_url=validate_url
            )
    except PalyraError as exc:
        fail(exc.envelope.message, 2)
    try:
        result = run_registry(
            db_url,
            lambda registry: _login(
                registry, config=oauth, profile_id=pid, port=port, browser=not no_browser
            ),
            config,
        )
    except typer.BadParameter as exc:
        fail(exc.message)
    if not result.succeeded:
        fail(result.message)
    typer.echo(f"signed in: {result.message}")


def refresh(
    profile_arg: Annotated[
        str | None, typer.Argument(help="Profile id.", show_default=False)
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Profile id.")] = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Refresh an OpenAI OAuth profile's access token now (respects a failure backoff)."""
    from palyra.cli.auth import _profile_id, run_registry
    from palyra.cli.common import fail

    chosen = profile or profile_arg
    if chosen is None:
        fail("name the profile: palyra auth openai refresh --profile ID", 2)
    pid = _profile_id(chosen)

    async def go(registry: AuthProfileRegistry) -> str:
        client: httpx2.AsyncClient
        async with make_upstream_client(allow_private=False, timeout_s=10.0) as client:
            outcome = await refresh_openai_profile(
                registry, registry.vault, pid, client=client, clock=time.time, force=True
            )
        expires = outcome.expires_at.isoformat() if outcome.expires_at else "unknown"
        return f"profile {outcome.profile_id}: {outcome.result.value}; expires at {expires}"

    typer.echo(run_registry(db_url, go, config))
