"""The coalescing transport: held writes leave as one, nothing is lost, nothing is reordered."""

from __future__ import annotations

import asyncio
import socket

import httpx2
import pytest

from palyra.daemon.server.http_protocol import CoalescingTransport

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = object


class RecordingTransport(asyncio.Transport):
    """Records each write as the socket transport would receive it (one entry per write)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


def test_writes_pass_straight_through_unless_held() -> None:
    inner = RecordingTransport()
    wire = CoalescingTransport(inner)
    wire.write(b"a")
    wire.write(b"b")
    assert inner.writes == [b"a", b"b"]


def test_held_writes_leave_as_one_write_in_order() -> None:
    inner = RecordingTransport()
    wire = CoalescingTransport(inner)
    wire.hold()
    wire.write(b"HTTP/1.1 200 OK\r\n\r\n")
    wire.write(b"{}")
    assert inner.writes == [] and wire.get_write_buffer_size() == 7 + 21
    wire.release()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    wire.release()  # nothing held: nothing written
    assert len(inner.writes) == 1


def test_close_writes_what_is_held_first_and_abort_drops_it() -> None:
    inner = RecordingTransport()
    wire = CoalescingTransport(inner)
    wire.hold()
    wire.write(b"last words")
    wire.close()
    assert inner.writes == [b"last words"] and inner.closed
    other = RecordingTransport()
    aborted = CoalescingTransport(other)
    aborted.hold()
    aborted.write(b"never sent")
    aborted.abort()
    aborted.release()
    assert other.writes == [] and other.aborted


def test_everything_else_is_the_real_transports() -> None:
    wire = CoalescingTransport(RecordingTransport())
    assert wire.get_extra_info("peername") == ("127.0.0.1", 5)
    assert wire.is_closing() is False


def test_a_whole_answer_arrives_with_its_head_in_one_piece(daemon: RunningDaemon) -> None:
    """On a real daemon: the response to a model call is complete, and the same as ever."""
    url: str = daemon.url  # type: ignore[attr-defined]
    headers: dict[str, str] = daemon.headers  # type: ignore[attr-defined]
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    with httpx2.Client() as client:
        for _ in range(3):  # kept alive: each answer ends where the next begins
            response = client.post(f"{url}/v1/chat/completions", headers=headers, json=body)
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["content"] == "You said: hi"
            assert int(response.headers["content-length"]) == len(response.content)
            assert response.headers["x-palyra-request-id"]


def test_a_raw_http_exchange_gets_a_well_formed_whole_answer(daemon: RunningDaemon) -> None:
    """A raw HTTP/1.1 exchange: a status line, headers, then exactly the JSON body."""
    url: str = daemon.url  # type: ignore[attr-defined]
    token = daemon.headers["authorization"]  # type: ignore[attr-defined]
    host, port = url.removeprefix("http://").split(":")
    payload = b'{"model": "default", "messages": [{"role": "user", "content": "hi"}]}'
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: {token}\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"{") and b"You said: hi" in rest
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.startswith(b"content-length")
    )
    assert len(rest) == length


@pytest.mark.parametrize("held", [True, False])
def test_release_on_a_closing_connection_writes_nothing(held: bool) -> None:
    inner = RecordingTransport()
    wire = CoalescingTransport(inner)
    if held:
        wire.hold()
        wire.write(b"x")
    inner.closed = True
    wire.release()
    assert inner.writes == []
