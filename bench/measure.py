"""Sequential latency, throughput under load, time to first token, and chunk fidelity."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class Target:
    """One way to ask for a chat answer: an endpoint, its headers and its request bodies."""

    name: str
    port: int
    path: str
    headers: dict[str, str]
    body: bytes
    stream_body: bytes
    wire: str  # "openai" or "anthropic": how a streamed token looks on this endpoint

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


@dataclass(frozen=True, slots=True)
class Latency:
    median_ms: float  # median of the round medians
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Throughput:
    rps: float
    errors: int
    tool: str


def _connect(target: Target) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)


def _post(
    conn: http.client.HTTPConnection, target: Target, body: bytes
) -> http.client.HTTPResponse:
    conn.request("POST", target.path, body=body, headers=target.headers)
    resp = conn.getresponse()
    if resp.status != 200:
        detail = resp.read()[:300].decode(errors="replace")
        raise RuntimeError(f"{target.name}: POST {target.url} answered {resp.status}: {detail}")
    return resp


def _timed_call(conn: http.client.HTTPConnection, target: Target) -> float:
    start = time.perf_counter()
    _post(conn, target, target.body).read()
    return (time.perf_counter() - start) * 1000


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _p99(samples: list[float]) -> float:
    return percentile(samples, 0.99)


def sequential_latency(
    *targets: Target, warmups: int = 15, rounds: int = 7, per_round: int = 25
) -> list[Latency]:
    """Alternate one call to each target in turn so drift (CPU frequency, GC, neighbours) hits
    all of them equally; the median of the round medians, and the p99 of every call."""
    conns = [_connect(target) for target in targets]
    sides = range(len(targets))
    try:
        for _ in range(warmups):
            for side in sides:
                _timed_call(conns[side], targets[side])
        medians: list[list[float]] = [[] for _ in sides]
        everything: list[list[float]] = [[] for _ in sides]
        for _ in range(rounds):
            this_round: list[list[float]] = [[] for _ in sides]
            for _ in range(per_round):
                for side in sides:
                    this_round[side].append(_timed_call(conns[side], targets[side]))
            for side in sides:
                medians[side].append(statistics.median(this_round[side]))
                everything[side].extend(this_round[side])
        return [Latency(statistics.median(medians[s]), _p99(everything[s])) for s in sides]
    finally:
        for conn in conns:
            conn.close()


def _is_token(wire: str, line: bytes) -> bool:
    """True for the first SSE data line that carries answer text in this wire format."""
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return False
    event = json.loads(payload)
    if wire == "openai":
        choices = event.get("choices") or [{}]
        return bool((choices[0].get("delta") or {}).get("content"))
    return event.get("type") == "content_block_delta" and bool(
        (event.get("delta") or {}).get("text")
    )


def _ttft_once(conn: http.client.HTTPConnection, target: Target) -> tuple[float, int]:
    """Milliseconds to the first text delta of one stream, and the stream's SSE data lines."""
    start = time.perf_counter()
    resp = _post(conn, target, target.stream_body)
    first: float | None = None
    events = 0
    while line := resp.readline():
        if line.startswith(b"data:"):
            events += 1
        if first is None and _is_token(target.wire, line):
            first = (time.perf_counter() - start) * 1000
    if first is None:
        raise RuntimeError(f"{target.name}: the stream from {target.url} carried no text")
    return first, events


@dataclass(frozen=True, slots=True)
class FirstToken:
    """Median time to the first text delta on a kept-alive and on a fresh connection, and the
    SSE data lines every stream carried (``events`` is -1 when streams differed)."""

    kept_alive_ms: float
    fresh_ms: float
    events: int


def time_to_first_token(*targets: Target, samples: int = 50) -> list[FirstToken]:
    """Each target in turn, on one kept-alive connection and then on a new connection each."""
    conns = [_connect(target) for target in targets]
    sides = range(len(targets))
    kept: list[list[float]] = [[] for _ in sides]
    fresh: list[list[float]] = [[] for _ in sides]
    events: list[set[int]] = [set() for _ in sides]
    try:
        for _ in range(5):
            for side in sides:
                _ttft_once(conns[side], targets[side])
        for _ in range(samples):
            for side in sides:
                ms, count = _ttft_once(conns[side], targets[side])
                kept[side].append(ms)
                events[side].add(count)
                new = _connect(targets[side])
                try:
                    ms, count = _ttft_once(new, targets[side])
                finally:
                    new.close()
                fresh[side].append(ms)
                events[side].add(count)
    finally:
        for conn in conns:
            conn.close()
    return [
        FirstToken(
            statistics.median(kept[s]),
            statistics.median(fresh[s]),
            events[s].pop() if len(events[s]) == 1 else -1,
        )
        for s in sides
    ]


def _lua_string(text: str) -> str:
    """A Lua long string; callers put it inside ``[ ]`` with spaces, as ``[[`` opens one too."""
    return "[==[" + text + "]==]"


def _wrk(wrk: str, target: Target, seconds: float, workdir: Path, concurrency: int) -> Throughput:
    script = workdir / f"wrk-{re.sub(r'[^a-z0-9]+', '-', target.name.lower())}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(target.body.decode())}"]
    lines += [
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in target.headers.items()
    ]
    script.write_text("\n".join(lines) + "\n")
    args = [wrk, "-t2", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script), target.url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30, check=True)
    if out.stderr.strip():  # wrk runs on, sending bare GETs, when its script does not load
        raise RuntimeError(f"wrk complained about {script}: {out.stderr.strip()}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if rps is None:
        raise RuntimeError(f"wrk printed no Requests/sec for {target.url}:\n{out.stdout}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out.stdout)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out.stdout
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(n) for n in sock.groups()) if sock else 0
    return Throughput(float(rps.group(1)), errors, "wrk")


async def _async_load(target: Target, seconds: float, concurrency: int) -> Throughput:
    """Workers on one keep-alive pool, each sending the next request as soon as one returns."""
    done = failed = 0
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits, timeout=10.0) as client:

        async def worker(deadline: float) -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                try:
                    resp = await client.post(
                        target.url, content=target.body, headers=target.headers
                    )
                    ok = resp.status_code == 200
                except httpx2.TransportError:
                    ok = False
                done += ok
                failed += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker(start + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return Throughput(done / elapsed, failed, "httpx2")


def _hey(hey: str, target: Target, seconds: float, concurrency: int) -> Throughput:
    """hey (one goroutine per connection, more CPU than wrk's event loop) at the same concurrency."""
    args = [
        hey,
        "-z",
        f"{seconds:g}s",
        "-c",
        str(concurrency),
        "-m",
        "POST",
        "-d",
        target.body.decode(),
    ]
    for key, value in target.headers.items():
        args += ["-H", f"{key}: {value}"]
    out = subprocess.run(
        [*args, target.url], capture_output=True, text=True, timeout=seconds + 30, check=True
    )
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if rps is None:
        raise RuntimeError(f"hey printed no Requests/sec for {target.url}:\n{out.stdout}")
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out.stdout)
    errors = sum(int(n) for code, n in codes if code != "200")
    if "Error distribution:" in out.stdout:
        tail = out.stdout.split("Error distribution:", 1)[1]
        errors += sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", tail, re.M))
    return Throughput(float(rps.group(1)), errors, "hey")


def load_tools() -> list[str]:
    """The load generators installed (wrk, hey), or the in-process fallback."""
    found = [tool for tool in ("wrk", "hey") if shutil.which(tool)]
    return found or ["httpx2"]


def throughput(
    target: Target, seconds: float, workdir: Path, tool: str, concurrency: int = CONCURRENCY
) -> Throughput:
    """Requests per second at ``concurrency`` with one load generator."""
    if tool == "wrk":
        return _wrk(shutil.which("wrk") or "wrk", target, seconds, workdir, concurrency)
    if tool == "hey":
        return _hey(shutil.which("hey") or "hey", target, seconds, concurrency)
    return asyncio.run(_async_load(target, seconds, concurrency))
