"""Under the daemon's logging setup a request leaves exactly one line: the access line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest

from palyra.daemon.observe.logging_setup import ACCESS_LOGGER, QUIET_LOGGERS, configure_logging
from palyra.testing import FakeUpstream

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """``configure_logging("info", "json")`` into a buffer; the previous setup is restored."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def _loggers(buffer: io.StringIO) -> list[str]:
    return [orjson.loads(line)["logger"] for line in buffer.getvalue().splitlines()]


def test_a_daemon_request_logs_only_its_access_line(
    daemon: RunningDaemon, log_output: io.StringIO
) -> None:
    response = httpx2.post(
        f"{daemon.url}/v1/chat/completions",
        headers=daemon.headers,
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert _loggers(log_output) == [ACCESS_LOGGER]


def test_upstream_http_clients_log_no_info_line_per_request(log_output: io.StringIO) -> None:
    with FakeUpstream() as upstream, httpx2.Client() as client:
        client.get(f"{upstream.openai_base_url}/models", headers={"authorization": "Bearer k"})
    assert _loggers(log_output) == []


def test_upstream_client_warnings_still_reach_the_log(log_output: io.StringIO) -> None:
    logging.getLogger("httpx2").warning("connection pool is full")
    assert _loggers(log_output) == ["httpx2"]
