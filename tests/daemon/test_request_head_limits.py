"""A request's head is bounded on the daemon: size, header count and the time it may take,
over real sockets against a real daemon (``[daemon] max_header_bytes``, ``max_header_count``,
``header_timeout_s``)."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import orjson
import pytest

from palyra.config.schema import DaemonConfig, default_config

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any


@pytest.fixture
def small(start_daemon: StartDaemon) -> RunningDaemon:
    config = default_config().model_copy(
        update={
            "daemon": DaemonConfig(max_header_bytes=4096, max_header_count=20, header_timeout_s=0.5)
        }
    )
    return start_daemon(config)


def _connect(daemon: RunningDaemon) -> socket.socket:
    host, port = daemon.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the daemon sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _status_and_error(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)["error"] if body else {}


def _read_one(sock: socket.socket) -> bytes:
    """One response with a content-length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_a_header_of_a_megabyte_is_refused_with_431_under_the_default_limit(
    daemon: RunningDaemon,
) -> None:
    with _connect(daemon) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ")
        try:
            for _ in range(64):  # 1 MiB offered, 16 KiB at a time
                sock.sendall(b"a" * 16384)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed before all of it was taken
        status, error = _status_and_error(_answer(sock))
    assert status == 431
    assert error["code"] == "request_header_too_large"
    assert "larger than 65536 bytes" in error["message"]
    assert "max_header_bytes" in error["message"]


def test_a_head_past_the_limit_in_one_write_is_refused_and_one_under_it_is_served(
    small: RunningDaemon,
) -> None:
    with _connect(small) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"b" * 5000 + b"\r\n\r\n")
        status, error = _status_and_error(_answer(sock))
    assert status == 431 and "larger than 4096 bytes" in error["message"]
    with _connect(small) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"b" * 3500 + b"\r\n\r\n")
        assert _read_one(sock).startswith(b"HTTP/1.1 200")


def test_a_long_target_counts_toward_the_head(small: RunningDaemon) -> None:
    with _connect(small) as sock:
        sock.sendall(b"GET /healthz?" + b"q" * 5000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _ = _status_and_error(_answer(sock))
    assert status == 431


def test_too_many_headers_are_refused_naming_the_setting(small: RunningDaemon) -> None:
    lines = b"".join(b"x-h%d: v\r\n" % i for i in range(25))
    with _connect(small) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + lines + b"\r\n")
        status, error = _status_and_error(_answer(sock))
    assert status == 431
    assert error["code"] == "too_many_headers"
    assert "26 headers; the limit is 20" in error["message"]


def test_the_second_request_on_a_kept_alive_connection_is_bounded_too(
    small: RunningDaemon,
) -> None:
    with _connect(small) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_one(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"c" * 5000 + b"\r\n\r\n")
        status, _ = _status_and_error(_answer(sock))
    assert status == 431


def test_a_large_body_arriving_with_its_head_is_not_mistaken_for_a_large_head(
    small: RunningDaemon,
) -> None:
    body = orjson.dumps(
        {"model": "default", "messages": [{"role": "user", "content": "word " * 20000}]}
    )
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + small.client_token.encode() + b"\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    with _connect(small) as sock:
        sock.sendall(head + body)  # one write: the first read holds the head and body
        assert _read_one(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(head + body)  # and again on the same connection
        assert _read_one(sock).startswith(b"HTTP/1.1 200")


def test_slow_heads_and_silent_connections_are_answered_408_and_closed(
    small: RunningDaemon,
) -> None:
    slow = [_connect(small) for _ in range(40)]
    silent = [_connect(small) for _ in range(10)]
    started = time.monotonic()
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
    for _ in range(3):  # a byte each now and then, as slowloris does
        time.sleep(0.1)
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.sendall(b"z")
    answers = [_answer(sock) for sock in slow + silent]
    elapsed = time.monotonic() - started
    for raw in answers:
        status, error = _status_and_error(raw)
        assert status == 408
        assert "within 0.5 s" in error["message"] and "header_timeout_s" in error["message"]
    assert elapsed < 5
    for sock in slow + silent:
        sock.close()
    with _connect(small) as sock:  # the daemon still serves
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_one(sock).startswith(b"HTTP/1.1 200")
