"""Upstream failures become envelopes: real OpenAI/Anthropic error bodies, Retry-After, transport."""

from __future__ import annotations

import email.utils
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest

from palyra.model import FailureClass
from palyra.providers.errors import (
    MAX_RETRY_AFTER_S,
    classify_http_error,
    classify_transport_error,
    parse_retry_after,
)

NOW = 1_800_000_000.0


def _openai(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def _anthropic(type_: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


# (status, body, headers, class, retryable, failover, retry_after_s, code)
_TABLE: list[tuple[int, bytes, dict[str, str], FailureClass, bool, bool, float | None, Any]] = [
    (
        401,
        _openai(
            "Incorrect API key provided: sk-abc12*****wxyz. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        {},
        FailureClass.AUTH_INVALID,
        False,
        True,
        None,
        "invalid_api_key",
    ),
    (
        429,
        _openai(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        {},
        FailureClass.QUOTA_EXHAUSTED,
        False,
        True,
        None,
        "insufficient_quota",
    ),
    (
        429,
        _openai(
            "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): "
            "Limit 30000, Used 29000, Requested 2000. Please try again in 2s.",
            "tokens",
            "rate_limit_exceeded",
        ),
        {"retry-after": "2", "x-ratelimit-remaining-tokens": "1000"},
        FailureClass.RATE_LIMITED,
        True,
        True,
        2.0,
        "rate_limit_exceeded",
    ),
    (
        400,
        _openai(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130000 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        {},
        FailureClass.CONTEXT_TOO_LONG,
        False,
        True,
        None,
        "context_length_exceeded",
    ),
    (
        404,
        _openai(
            "The model `gpt-9` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        {},
        FailureClass.NOT_FOUND,
        False,
        True,
        None,
        "model_not_found",
    ),
    (
        500,
        b"<html><head><title>500 Internal Server Error</title></head><body>oops</body></html>",
        {},
        FailureClass.UPSTREAM_UNAVAILABLE,
        True,
        True,
        None,
        None,
    ),
    (
        529,
        _anthropic("overloaded_error", "Overloaded"),
        {},
        FailureClass.UPSTREAM_UNAVAILABLE,
        True,
        True,
        None,
        "overloaded_error",
    ),
    (
        401,
        _anthropic("authentication_error", "invalid x-api-key"),
        {},
        FailureClass.AUTH_INVALID,
        False,
        True,
        None,
        "authentication_error",
    ),
    (
        429,
        _anthropic(
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        {"retry-after": "17"},
        FailureClass.RATE_LIMITED,
        True,
        True,
        17.0,
        "rate_limit_error",
    ),
    (
        400,
        _anthropic("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
        {},
        FailureClass.CONTEXT_TOO_LONG,
        False,
        True,
        None,
        "invalid_request_error",
    ),
    (
        400,
        _anthropic(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
            "Billing to upgrade or purchase credits.",
        ),
        {},
        FailureClass.QUOTA_EXHAUSTED,
        False,
        True,
        None,
        "invalid_request_error",
    ),
    (
        404,
        _anthropic("not_found_error", "model: claude-9"),
        {},
        FailureClass.NOT_FOUND,
        False,
        True,
        None,
        "not_found_error",
    ),
    (
        403,
        _anthropic("permission_error", "Your API key does not have permission to use this."),
        {},
        FailureClass.PERMISSION_DENIED,
        False,
        True,
        None,
        "permission_error",
    ),
    (
        400,
        _anthropic("invalid_request_error", "messages: roles must alternate"),
        {},
        FailureClass.INVALID_REQUEST,
        False,
        False,
        None,
        "invalid_request_error",
    ),
    (502, b"", {}, FailureClass.UPSTREAM_UNAVAILABLE, True, True, None, None),
    (
        503,
        b"upstream connect error",
        {"retry-after": "3"},
        FailureClass.UPSTREAM_UNAVAILABLE,
        True,
        True,
        3.0,
        None,
    ),
    (
        401,
        _openai(
            "Your authentication token has expired. Please try signing in again.",
            "invalid_request_error",
            "token_expired",
        ),
        {},
        FailureClass.AUTH_EXPIRED,
        False,
        True,
        None,
        "token_expired",
    ),
    (418, b"I'm a teapot", {}, FailureClass.INVALID_REQUEST, False, False, None, None),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "failure", "retryable", "failover", "retry_after", "code"),
    _TABLE,
)
def test_real_error_bodies_are_classified(
    status: int,
    body: bytes,
    headers: dict[str, str],
    failure: FailureClass,
    retryable: bool,
    failover: bool,
    retry_after: float | None,
    code: str | None,
) -> None:
    envelope = classify_http_error(status, body, httpx2.Headers(headers), provider="up", model="m1")
    assert envelope.failure_class is failure
    assert (envelope.retryable, envelope.failover_allowed) == (retryable, failover)
    assert envelope.retry_after_s == retry_after
    assert envelope.code == code
    assert envelope.upstream_status == status
    assert (envelope.provider, envelope.model) == ("up", "m1")
    assert envelope.message.startswith(f"up: upstream answered {status}: ")


def test_the_param_of_an_openai_error_is_kept() -> None:
    envelope = classify_http_error(400, _TABLE[3][1], {})
    assert envelope.param == "messages"


def test_secrets_echoed_in_an_error_body_are_redacted() -> None:
    body = _openai(
        "bad header Authorization: Bearer eyJhbGciOi.secret.token and key sk-live-1234567890abc",
        "invalid_request_error",
        None,
    )
    message = classify_http_error(400, body, {}).message
    assert "eyJhbGciOi" not in message and "1234567890abc" not in message
    assert "Bearer [REDACTED]" in message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, 5.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "junk", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after": email.utils.formatdate(NOW + 42, usegmt=True)}, 42.0),
        ({"retry-after": email.utils.formatdate(NOW - 42, usegmt=True)}, 0.0),
        ({"retry-after": "-7"}, 0.0),
        ({"retry-after": "99999"}, MAX_RETRY_AFTER_S),
        ({"retry-after": "inf"}, MAX_RETRY_AFTER_S),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_in_every_form(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected
    assert parse_retry_after(httpx2.Headers(headers), now=NOW) == expected


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server that accepts and then says nothing (or hangs up, if told to)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


async def test_a_read_timeout_from_a_real_server_is_a_timeout(
    silent_server: tuple[int, list[socket.socket]],
) -> None:
    port, _ = silent_server
    async with httpx2.AsyncClient(timeout=0.1) as client:
        with pytest.raises(httpx2.TimeoutException) as caught:
            await client.get(f"http://127.0.0.1:{port}/")
    envelope = classify_transport_error(caught.value, provider="up")
    assert envelope.failure_class is FailureClass.TIMEOUT
    assert envelope.retryable
    assert envelope.message == "up: upstream timed out (ReadTimeout)"


async def test_a_refused_connection_is_a_connection_error() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    async with httpx2.AsyncClient(timeout=2.0) as client:
        with pytest.raises(httpx2.ConnectError) as caught:
            await client.get(f"http://127.0.0.1:{port}/")
    envelope = classify_transport_error(caught.value)
    assert envelope.failure_class is FailureClass.CONNECTION
    assert envelope.message.startswith("could not reach upstream (ConnectError")


async def test_a_server_hanging_up_mid_request_is_a_closed_connection() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    async with httpx2.AsyncClient(timeout=2.0) as client:
        with pytest.raises(httpx2.TransportError) as caught:
            await client.get(f"http://127.0.0.1:{port}/")
    thread.join()
    listener.close()
    envelope = classify_transport_error(caught.value, provider="up")
    assert envelope.failure_class is FailureClass.CONNECTION
    assert envelope.message.startswith("up: upstream closed the connection")


def test_a_plain_timeout_error_is_a_timeout() -> None:
    assert classify_transport_error(TimeoutError()).failure_class is FailureClass.TIMEOUT


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (301, "upstream_redirect"),
        (307, "upstream_redirect"),
        (304, "upstream_redirect"),
        (101, "upstream_unexpected_status"),
    ],
)
def test_a_redirect_is_the_upstreams_fault_not_the_clients(status: int, code: str) -> None:
    envelope = classify_http_error(
        status, b"<html>moved</html>", {"location": "https://elsewhere.invalid/"}, provider="p"
    )
    assert envelope.failure_class is FailureClass.MALFORMED_RESPONSE
    assert envelope.http_status == 502
    assert envelope.failover_allowed and not envelope.retryable
    assert envelope.code == code and envelope.upstream_status == status
    assert "elsewhere.invalid" not in envelope.message and "base_url" in envelope.message
