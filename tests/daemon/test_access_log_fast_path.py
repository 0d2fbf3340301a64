"""The access line's cheap path: built without a LogRecord, held up to 100 ms, never lost or
reordered. Lines must read exactly as the record path (``logger.info`` + formatter) renders them.

pytest's log capture puts its own handlers on the root logger (which sends access lines down the
record path), so these tests install the daemon's logging inside the test body and put pytest's
handlers back afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import httpx2
import orjson
import pytest
from observe_support import FakeClock, failover_trail
from starlette.types import Message, Receive, Scope, Send

from palyra.config.schema import default_config
from palyra.daemon import AppState
from palyra.daemon.observe.exchange import ObservabilityMiddleware, new_request_id
from palyra.daemon.observe.logging_setup import (
    FLUSH_INTERVAL_S,
    QUIET_LOGGERS,
    DaemonLogHandler,
    configure_logging,
    flush_logging,
    log_access,
)
from palyra.model import Usage

# What the daemon logged for this request before the cheap path existed (logger.info through
# the formatters), at time.time() == 1700000000.9996 and == 1700000000.9999996 (where the JSON
# timestamp's microseconds round up into the next second and the text one's msecs truncate).
JSON_LINE = (
    '{"ts":"2023-11-14T22:13:2%s","level":"info","logger":"palyra.access",'
    '"msg":"POST /v1/chat/completions 200 261.0ms model=slow id=req-42","request_id":"req-42",'
    '"method":"POST","path":"/v1/chat/completions","status":200,"duration_ms":261.0,'
    '"model":"slow","upstream_ms":250.6,'
    '"attempts":"openai-main/up-fast:rate_limited,openai-main/up-slow:ok","interrupted":"client"}\n'
)
JSON_TS = {1700000000.9996: "0.999Z", 1700000000.9999996: "1.000Z"}
TEXT_MESSAGE = "INFO palyra.access: POST /v1/chat/completions 200 261.0ms model=slow id=req-42\n"


@contextmanager
def daemon_logging(
    log_format: str, stream: TextIO | None = None
) -> Iterator[tuple[DaemonLogHandler, io.StringIO]]:
    """``configure_logging("info", log_format)`` into ``stream`` (a new buffer by default) for
    the ``with`` block; the root logger's previous handlers and levels are put back."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    buffer = io.StringIO()
    handler = configure_logging(
        "info", "json" if log_format == "json" else "text", stream or buffer
    )
    assert isinstance(handler, DaemonLogHandler)
    try:
        yield handler, buffer
    finally:
        root.removeHandler(handler)
        handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


async def _request(request_id: str = "req-42") -> None:
    """One request through the real middleware: timed upstream wait, a failover trail, usage, a
    stream the client left (every optional access field is present)."""
    clock = FakeClock()
    state = AppState.from_config(default_config())

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        hooks = scope["state"]
        clock.now += 0.0104
        with hooks["upstream_timer"].waiting():
            clock.now += 0.2506
        hooks["attempt_trail"] = failover_trail()
        hooks["usage"] = Usage(input_tokens=3, output_tokens=5)
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-palyra-model", b"slow")],
        }
        await send(start)
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    middleware = ObservabilityMiddleware(handler, state=state, routes=[], clock=clock)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"x-request-id", request_id.encode())],
    }
    await middleware(scope, receive, send)


@pytest.mark.parametrize("now", sorted(JSON_TS))
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_cheap_line_is_the_line_the_record_path_writes(
    log_format: str, now: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: now)  # LogRecord's clock and the cheap path's
    with daemon_logging(log_format) as (handler, out):
        await _request()
        assert out.getvalue() == ""  # held: it took the cheap path
        handler.flush()
        cheap = out.getvalue()
        handler.addFilter(lambda record: True)  # any filter sends lines through LogRecords
        await _request()
        recorded = out.getvalue()[len(cheap) :]
    assert cheap == recorded
    if log_format == "json":
        assert cheap == JSON_LINE % JSON_TS[now]
    else:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1700000000))
        assert cheap == f"{stamp},999 {TEXT_MESSAGE}"


async def test_a_warning_is_written_at_once_after_the_held_access_lines() -> None:
    with daemon_logging("text") as (_, out):
        for n in range(3):
            await _request(f"req-{n}")
        assert out.getvalue() == ""
        logging.getLogger("palyra.daemon").warning("upstream %s is slow", "openai-main")
        lines = out.getvalue().splitlines()
    assert [line.rpartition(" id=")[2] for line in lines[:3]] == ["req-0", "req-1", "req-2"]
    assert len(lines) == 4 and lines[3].endswith(
        " WARNING palyra.daemon: upstream openai-main is slow"
    )


async def test_held_lines_are_written_by_the_event_loop_within_the_interval() -> None:
    with daemon_logging("json") as (_, out):
        await _request()
        started = time.monotonic()
        assert out.getvalue() == ""
        while not out.getvalue():
            assert time.monotonic() - started < 2.0, "the held line was never written"
            await asyncio.sleep(0.005)
        waited = time.monotonic() - started
        assert orjson.loads(out.getvalue())["request_id"] == "req-42"
    assert waited < 1.0


async def test_a_line_finding_the_oldest_held_one_due_writes_them_when_the_loop_is_busy() -> None:
    with daemon_logging("text") as (_, out):
        await _request("first")
        # Block the loop on purpose: its flush timer cannot run meanwhile.
        time.sleep(FLUSH_INTERVAL_S * 1.2)  # noqa: ASYNC251
        assert out.getvalue() == ""
        await _request("second")
        ids = [line.rpartition(" id=")[2] for line in out.getvalue().splitlines()]
    assert ids == ["first", "second"]


def test_without_a_running_event_loop_the_line_is_written_at_once() -> None:
    fields = {
        "request_id": "sync-1",
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "duration_ms": 0.4,
        "model": None,
    }
    with daemon_logging("text") as (_, out):
        thread = threading.Thread(target=log_access, args=(fields,))
        thread.start()
        thread.join()
        assert out.getvalue().endswith(
            " INFO palyra.access: GET /healthz 200 0.4ms model=- id=sync-1\n"
        )


async def test_with_another_handler_attached_access_lines_stay_log_records() -> None:
    other = io.StringIO()
    with daemon_logging("json") as (_, out):
        extra = logging.StreamHandler(other)
        logging.getLogger("palyra").addHandler(extra)
        try:
            await _request()
        finally:
            logging.getLogger("palyra").removeHandler(extra)
        assert orjson.loads(out.getvalue())["request_id"] == "req-42"  # written at once
    assert other.getvalue() == "POST /v1/chat/completions 200 261.0ms model=slow id=req-42\n"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_child_repeats_neither_held_lines_nor_request_ids(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    with log.open("a") as stream, daemon_logging("text", stream) as (handler, _):
        await _request("before-fork")  # held in this process
        new_request_id()  # ids were handed out here before the fork
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            try:
                os.write(write_fd, new_request_id().encode())
                flush_logging()
            finally:
                os._exit(0)
        os.close(write_fd)
        child_id = os.read(read_fd, 64).decode()
        os.close(read_fd)
        os.waitpid(pid, 0)  # noqa: ASYNC222 (the child exits at once)
        parent_id = new_request_id()
        handler.flush()
    assert len(child_id) == 32 and child_id != parent_id
    assert log.read_text().count("id=before-fork") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_a_burst_then_sigterm_loses_no_access_line(workers: int, tmp_path: Path) -> None:
    env = {**os.environ, "PALYRA_STATE_DIR": str(tmp_path / "state")}
    env.pop("PALYRA_CONFIG", None)
    log = tmp_path / "serve.log"
    command = "from palyra.cli.main import main; main()"
    serve = ["serve", "--bind", "127.0.0.1:0", "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", command, *serve],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
        )
    try:
        deadline = time.monotonic() + 15
        while not (found := re.search(r"serving on (http://127\.0\.0\.1:\d+)/v1", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        url = f"{found.group(1)}/healthz"
        per_client, clients = 150, 4
        statuses: list[int] = []

        def burst(client_no: int) -> None:
            # A new connection per client, so with two workers the kernel spreads them.
            with httpx2.Client(timeout=10) as client:
                for n in range(per_client):
                    request_id = f"burst-{client_no}-{n}"
                    statuses.append(
                        client.get(url, headers={"x-request-id": request_id}).status_code
                    )

        threads = [threading.Thread(target=burst, args=(c,)) for c in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * (per_client * clients)
        process.send_signal(signal.SIGTERM)  # at once: the last lines are still held
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    logged = collections.Counter(
        re.findall(r" INFO palyra\.access: GET /healthz 200 .* id=(burst-\S+)", text)
    )
    expected = {f"burst-{c}-{n}" for c in range(clients) for n in range(per_client)}
    assert set(logged) == expected and set(logged.values()) == {1}, text[-2000:]
    assert text.rstrip().endswith("palyra stopped")


def test_lines_held_when_the_process_exits_are_written(tmp_path: Path) -> None:
    """The event loop ends before its flush timer fires; ``logging.shutdown`` at exit writes."""
    log = tmp_path / "exit.log"
    script = (
        "import asyncio, sys\n"
        "from palyra.daemon.observe.logging_setup import configure_logging, log_access\n"
        "configure_logging('info', 'text', open(sys.argv[1], 'a'))\n"
        "async def main():\n"
        "    for n in range(50):\n"
        "        log_access({'request_id': f'exit-{n}', 'method': 'GET', 'path': '/healthz',\n"
        "                    'status': 200, 'duration_ms': 0.1, 'model': None})\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(log)], check=True, timeout=30)
    ids = [line.rpartition(" id=")[2] for line in log.read_text().splitlines()]
    assert ids == [f"exit-{n}" for n in range(50)]
