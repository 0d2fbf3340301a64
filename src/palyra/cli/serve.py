"""``palyra serve``: run the daemon on uvicorn (uvloop, httptools) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import tomllib
from pathlib import Path

import typer
from pydantic import ValidationError

from palyra.config.schema import PalyraConfig, default_config

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


def load_config(path: Path | None) -> PalyraConfig:
    """The config at ``path``, or the built-in defaults (a deterministic provider) without one."""
    if path is None:
        return default_config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return PalyraConfig.model_validate(data)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise typer.BadParameter(f"{path}: not valid TOML ({exc})") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise typer.BadParameter(f"{path}: {where}: {err['msg']}") from exc


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
        None, "--config", help="palyra.toml to use (default: built-in deterministic setup)."
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
        timeout_graceful_shutdown=int(cfg.daemon.shutdown_grace_s),
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
