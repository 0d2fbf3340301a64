"""``palyra serve``: run the daemon on uvicorn (uvloop, httptools) until SIGINT or SIGTERM.

With ``--workers N`` (or ``[daemon] workers``) above 1 this process does the start-up work once,
binds the socket and supervises N forked worker processes (see :mod:`palyra.daemon.server.workers`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from palyra.cli.common import EXIT_STATE_DAMAGED, ConfigOpt
from palyra.config import ConfigError
from palyra.config import load_config as load_effective_config
from palyra.config.daemon_rules import split_bind
from palyra.config.schema import PalyraConfig

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from palyra.daemon import AppState
    from palyra.daemon.security.startup_tokens import StartupTokens
    from palyra.daemon.server.workers import WorkerSlot
    from palyra.store import Store

log = logging.getLogger("palyra")


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) split and checked (as ``palyra config check``
    checks ``[daemon] bind``)."""
    split = split_bind(bind)
    if isinstance(split, str):
        raise typer.BadParameter(split)
    return split


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> PalyraConfig:
    """The effective config (``--config``, else discovery, plus ``PALYRA__*`` overrides); every
    problem found is printed and the command exits 1."""
    try:
        return load_effective_config(path, env).config
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"palyra serve: {problem}", err=True)
        raise typer.Exit(1) from None


async def prepare_schema(store: Store) -> None:
    """SQLite (the embedded default) is migrated here, so ``palyra serve`` stays one command;
    PostgreSQL is shared by replicas, so it is migrated once by ``palyra db upgrade`` and a
    database that is not fully migrated (or was migrated by a newer Palyra) is refused."""
    from palyra.daemon.schemas import STORE_SCHEMAS
    from palyra.store.migrations import SchemaError
    from palyra.store.schema_status import (
        newer_problem,
        pending_problem,
        schema_status,
        upgrade_schema,
    )

    if store.dialect == "sqlite":
        await upgrade_schema(store, STORE_SCHEMAS)
        return
    statuses = await schema_status(store, STORE_SCHEMAS)
    problem = newer_problem(statuses, store.url) or pending_problem(statuses, store.url)
    if problem is not None:
        raise SchemaError(problem)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --bind HOST:PORT"
        ) from exc


def serve(
    config: ConfigOpt = None,
    bind: str | None = typer.Option(
        None, "--bind", help="HOST:PORT to listen on (default: \\[daemon] bind, 127.0.0.1:7142)."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=256,
        help="Worker processes sharing the socket (default: \\[daemon] workers, 1). One Python "
        "process saturates one CPU core; on a busy host use one worker per core.",
    ),
) -> None:
    """Run the Palyra daemon."""
    from palyra.daemon import AppState
    from palyra.daemon.observe.logging_setup import configure_logging
    from palyra.daemon.security.startup_tokens import prepare_tokens
    from palyra.daemon.server.fd_limit import LOW_OPEN_FILES, raise_open_file_limit
    from palyra.daemon.state import prepare_store
    from palyra.model import PalyraError
    from palyra.paths import state_dir
    from palyra.providers.tokens import warm_up
    from palyra.store import StoreCorrupt, open_store

    cfg = load_config(config)
    host, port = parse_bind(bind or cfg.daemon.bind)
    count = workers or cfg.daemon.workers
    level = cfg.daemon.log_level.upper()
    configure_logging(level, cfg.daemon.log_format)
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLevelName(level)))

    async def start_up_once() -> StartupTokens:
        # The store is opened (and checked) before anything else, so a damaged or unmigrated
        # database stops the start-up here, however tokens are configured.
        store = await open_store(cfg.storage.url, state_dir=states)
        try:
            await prepare_schema(store)
        finally:
            await store.aclose()
        tokens = await prepare_tokens(cfg, host=host, state_dir=states, environ=os.environ)
        if count > 1:  # what every worker's start would otherwise race to do
            await prepare_store(cfg, states=states, environ=os.environ)
        return tokens

    try:
        state = AppState.from_config(cfg)  # also checks what the config loader cannot
        states = state_dir()
        tokens = asyncio.run(start_up_once())
    except PalyraError as exc:
        typer.echo(f"palyra serve: {exc.envelope.message}", err=True)
        raise typer.Exit(EXIT_STATE_DAMAGED if isinstance(exc, StoreCorrupt) else 2) from exc
    if tokens.minted is not None:
        # The one place a token is shown: stdout, never the log.
        typer.echo(
            f"Created a client token for local use (shown once; also saved 0600 to "
            f"{tokens.token_file}):\n  {tokens.minted}\n"
            "Send it as Authorization: Bearer <token>. Admin token: palyra token create --admin"
        )
    if count > 1:
        # Loaded once here, the tables' pages are shared by every forked worker; a single
        # process loads them when a request first needs an exact count (most never do).
        warm_up(m.upstream_model for m in cfg.model_provider.models)
    open_files = raise_open_file_limit()
    if open_files < LOW_OPEN_FILES:
        log.warning(
            "the open-file limit is %d (ulimit -n); each stream holds two sockets, so raise it "
            "to serve more than about %d concurrent streams",
            open_files,
            open_files // 2,
        )
    sock = _listen(host, port)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    groups = state.runtime.registry.group_ids
    log.info(
        "palyra serving on http://%s:%d/v1 (models: %s%s)%s",
        url_host,
        bound_port,
        ", ".join(state.model_ids) or "none",
        f"; routing groups: {', '.join(groups)}" if groups else "",
        f" with {count} workers" if count > 1 else "",
    )
    log.info(
        "web console: http://%s:%d/console (sign in with an admin token: "
        "palyra token create --admin)",
        url_host,
        bound_port,
    )
    try:
        if count == 1:
            _run(state, cfg, tokens, states, sock)
        else:
            del state  # each worker builds its own, after the fork
            code = _supervise(cfg, tokens, states, sock, count)
            if code:
                raise typer.Exit(code)
    finally:
        sock.close()
    log.info("palyra stopped")


def _run(
    state: AppState,
    cfg: PalyraConfig,
    tokens: StartupTokens,
    states: Path,
    sock: socket.socket,
    worker: WorkerSlot | None = None,
) -> None:
    """Serve ``state`` on ``sock`` in this process until SIGINT/SIGTERM, draining first."""
    import uvicorn  # imported here so other commands start without the server stack

    from palyra.daemon import create_app
    from palyra.daemon.observe.logging_setup import flush_logging
    from palyra.daemon.security.policy import Authenticator
    from palyra.daemon.server.http_protocol import protocol_for
    from palyra.daemon.server.workers import stop_on_signal, watch_parent

    state.worker = worker
    # The proactive OAuth refresher runs once per host: in worker 0 when there are several.
    state.refresh_oauth = worker is None or worker.index == 0
    # One cron scheduler per process group is enough (claims would keep more exactly-once).
    state.run_scheduler = worker is None or worker.index == 0
    state.auth = Authenticator(
        store_url=cfg.storage.url, state_dir=states, fixed_tokens=tokens.fixed
    )
    server_config = uvicorn.Config(
        create_app(state),
        loop="uvloop",
        http=protocol_for(cfg.daemon),  # with [daemon]'s request head limits
        lifespan="on",
        access_log=False,
        log_config=None,
        # Nothing reads the client address or scheme (the console refuses proxied requests by
        # their headers), so uvicorn need not rewrite them from X-Forwarded-* on every request.
        proxy_headers=False,
        # No "server: uvicorn" on every response: it advertises the stack and costs a header.
        server_header=False,
        # In-flight streams get this long to finish after SIGINT/SIGTERM.
        timeout_graceful_shutdown=math.ceil(cfg.daemon.shutdown_grace_s),
    )
    server = uvicorn.Server(server_config)

    async def serve_until_stopped() -> None:
        watch = None
        if worker is not None:
            watch = asyncio.create_task(watch_parent(worker.parent_fd, server))
        try:
            await server.serve(sockets=[sock])
        finally:
            if watch is not None:
                watch.cancel()

    if worker is None:
        # uvicorn drains connections on SIGINT/SIGTERM, then re-raises the signal; both end up
        # here as KeyboardInterrupt so either way the process says it stopped and exits 0.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    else:
        stop_on_signal(server)  # a signal that came during start-up stops it now
    try:
        with asyncio.Runner(loop_factory=server_config.get_loop_factory()) as runner:
            runner.run(serve_until_stopped())
    except KeyboardInterrupt:
        pass
    finally:
        # Access lines are held up to 100 ms; a forked worker exits without logging.shutdown.
        flush_logging()


def _supervise(
    cfg: PalyraConfig, tokens: StartupTokens, states: Path, sock: socket.socket, count: int
) -> int:
    """Fork ``count`` workers serving ``sock`` and supervise them; the exit code to use."""
    from palyra.daemon import AppState
    from palyra.daemon.server.workers import (
        ParentLink,
        SnapshotFiles,
        Supervisor,
        WorkerSlot,
        make_run_dir,
        remove_run_dir,
        start_worker,
    )

    run_dir = make_run_dir(states)
    link = ParentLink()
    # Everything loaded so far (modules, config, tokenizer tables) moves out of the collector's
    # reach: a collection in a worker would otherwise write to (and so copy) every shared page.
    gc.collect()
    gc.freeze()

    def spawn(index: int) -> BaseProcess:
        slot = WorkerSlot(index=index, count=count, run_dir=run_dir, parent_fd=link.read_fd)

        def work() -> None:
            _run(AppState.from_config(cfg), cfg, tokens, states, sock, slot)

        return start_worker(work, f"palyra-worker-{index}", link)

    try:
        supervisor = Supervisor(
            count, spawn, SnapshotFiles(run_dir), shutdown_grace_s=cfg.daemon.shutdown_grace_s
        )
        return supervisor.run()
    finally:
        link.close()
        remove_run_dir(run_dir)
