"""Many concurrent streams from one asyncio process, and what each one saw.

wrk and hey cannot hold thousands of streaming requests open and tell when each one ended, so
this opens one raw connection per stream, sends the request, and reads the SSE answer to its
end: how long the whole stream took, how many events it carried, and when the first text came.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from measure import Target, percentile

DONE_MARKERS = (b"data: [DONE]", b"event: message_stop")


@dataclass(frozen=True, slots=True)
class StreamRun:
    """One burst of ``streams`` concurrent streams."""

    streams: int
    ok: int
    p50_s: float
    p99_s: float
    wall_s: float
    events: int  # SSE data lines of one successful stream (all successful ones carried as many)
    uneven: int  # successful streams whose count differs from the first one's
    errors: list[str]

    @property
    def success(self) -> float:
        return self.ok / self.streams if self.streams else 0.0


def _request(target: Target) -> bytes:
    headers = {**target.headers, "content-length": str(len(target.stream_body))}
    lines = [f"POST {target.path} HTTP/1.1", f"host: 127.0.0.1:{target.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + target.stream_body


async def one_stream(target: Target, start_gate: asyncio.Event | None = None) -> tuple[float, int]:
    """Seconds from sending to the stream's end, and its SSE data lines; raises on failure."""
    if start_gate is not None:
        await start_gate.wait()
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port, limit=1 << 20)
    try:
        started = time.perf_counter()
        writer.write(_request(target))
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"status {status.decode(errors='replace').strip()!r}")
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
                chunked = True
        events = 0
        buffered = b""
        finished = False
        while not finished:
            if chunked:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                piece = await reader.readexactly(size + 2)
                buffered += piece[:-2]
            else:
                piece = await reader.read(65536)
                if not piece:
                    break
                buffered += piece
            *complete, buffered = buffered.split(b"\n")
            for line in complete:
                if line.startswith(b"data:"):
                    events += 1
                if line.startswith(DONE_MARKERS):
                    finished = True
        if not finished:
            raise RuntimeError("the stream ended without its end marker")
        return time.perf_counter() - started, events
    finally:
        writer.close()


async def _burst(target: Target, streams: int, timeout_s: float) -> StreamRun:
    gate = asyncio.Event()
    tasks = [asyncio.create_task(one_stream(target, gate)) for _ in range(streams)]
    await asyncio.sleep(0)  # every task waits at the gate: they all start together
    started = time.perf_counter()
    gate.set()
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    wall = time.perf_counter() - started
    times: list[float] = []
    counts: list[int] = []
    errors: list[str] = []
    for task in tasks:
        if task in pending:
            errors.append(f"no end within {timeout_s:g} s")
            continue
        exc = task.exception()
        if exc is not None:
            errors.append(f"{type(exc).__name__}: {exc}"[:160])
            continue
        seconds, events = task.result()
        times.append(seconds)
        counts.append(events)
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    first = counts[0] if counts else 0
    return StreamRun(
        streams=streams,
        ok=len(times),
        p50_s=statistics.median(times) if times else float("nan"),
        p99_s=percentile(times, 0.99) if times else float("nan"),
        wall_s=wall,
        events=first,
        uneven=sum(1 for c in counts if c != first),
        errors=sorted(set(errors))[:5],
    )


def concurrent_streams(target: Target, streams: int, timeout_s: float = 60.0) -> StreamRun:
    """``streams`` streaming requests sent at once, each on its own connection."""
    try:
        import uvloop

        return uvloop.run(_burst(target, streams, timeout_s))
    except ImportError:
        return asyncio.run(_burst(target, streams, timeout_s))
