"""``palyra serve``: run the daemon on uvicorn (uvloop, httptools) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path

import typer

from palyra.config import ConfigError
from palyra.config import load_config as load_effective_config
from palyra.config.schema import PalyraConfig

log = logging.getLogger("palyra")


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) split and checked."""
    host, sep, port = bind.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise typer.BadParameter(
            f"bind address {bind!r} is not HOST:PORT; use e.g. 127.0.0.1:7142 or [::1]:7142"
        )
    return host, int(port)


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> PalyraConfig:
    """The effective config (``--config``, else discovery, plus ``PALYRA__*`` overrides); every
    problem found is printed and the command exits 1."""
    try:
        return load_effective_config(path, env).config
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"palyra serve: {problem}", err=True)
        raise typer.Exit(1) from None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --bind HOST:PORT"
        ) from exc


def serve(
    config: Path | None = typer.Option(
        None,
        "--config",
        help="palyra.toml to use (default: $PALYRA_CONFIG, ./palyra.toml, the XDG config file, "
        "else the built-in deterministic setup).",
    ),
    bind: str | None = typer.Option(
        None, "--bind", help="HOST:PORT to listen on (default: [daemon] bind, 127.0.0.1:7142)."
    ),
) -> None:
    """Run the Palyra daemon."""
    import uvicorn  # imported here so other commands start without the server stack

    from palyra.daemon import AppState, create_app
    from palyra.daemon.logging_setup import configure_logging
    from palyra.daemon.security import Authenticator
    from palyra.daemon.startup_tokens import prepare_tokens
    from palyra.model import PalyraError
    from palyra.paths import state_dir

    cfg = load_config(config)
    host, port = parse_bind(bind or cfg.daemon.bind)
    level = cfg.daemon.log_level.upper()
    configure_logging(level, cfg.daemon.log_format)
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    try:
        state = AppState.from_config(cfg)
        states = state_dir()
        tokens = asyncio.run(prepare_tokens(cfg, host=host, state_dir=states, environ=os.environ))
    except PalyraError as exc:
        typer.echo(f"palyra serve: {exc.envelope.message}", err=True)
        raise typer.Exit(2) from exc
    if tokens.minted is not None:
        # The one place a token is shown: stdout, never the log.
        typer.echo(
            f"Created a client token for local use (shown once; also saved 0600 to "
            f"{tokens.token_file}):\n  {tokens.minted}\n"
            "Send it as Authorization: Bearer <token>. Admin token: palyra token create --admin"
        )
    state.refresh_oauth = True
    state.auth = Authenticator(
        store_url=cfg.storage.url, state_dir=states, fixed_tokens=tokens.fixed
    )
    server_config = uvicorn.Config(
        create_app(state),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        # Nothing reads the client address or scheme (the console refuses proxied requests by
        # their headers), so uvicorn need not rewrite them from X-Forwarded-* on every request.
        proxy_headers=False,
        # In-flight streams get this long to finish after SIGINT/SIGTERM.
        timeout_graceful_shutdown=math.ceil(cfg.daemon.shutdown_grace_s),
    )
    server = uvicorn.Server(server_config)
    sock = _listen(host, port)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    log.info(
        "palyra serving on http://%s:%d/v1 (models: %s)",
        url_host,
        bound_port,
        ", ".join(state.model_ids) or "none",
    )
    # uvicorn drains connections on SIGINT/SIGTERM, then re-raises the signal; both end up here
    # as KeyboardInterrupt so either way the process says it stopped and exits 0.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with asyncio.Runner(loop_factory=server_config.get_loop_factory()) as runner:
            runner.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    log.info("palyra stopped")
