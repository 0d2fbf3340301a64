"""The three measurements: sequential latency, throughput under load, and time to first token."""

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


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def sequential_latency(
    direct: Target, palyra: Target, *, warmups: int = 15, rounds: int = 7, per_round: int = 25
) -> tuple[Latency, Latency]:
    """Alternate one call each way so drift (CPU frequency, GC, neighbours) hits both equally."""
    conns = (_connect(direct), _connect(palyra))
    try:
        for _ in range(warmups):
            _timed_call(conns[0], direct)
            _timed_call(conns[1], palyra)
        medians: tuple[list[float], list[float]] = ([], [])
        everything: tuple[list[float], list[float]] = ([], [])
        for _ in range(rounds):
            this_round: tuple[list[float], list[float]] = ([], [])
            for _ in range(per_round):
                this_round[0].append(_timed_call(conns[0], direct))
                this_round[1].append(_timed_call(conns[1], palyra))
            for side in (0, 1):
                medians[side].append(statistics.median(this_round[side]))
                everything[side].extend(this_round[side])
        direct_lat, palyra_lat = (
            Latency(statistics.median(medians[side]), _p99(everything[side])) for side in (0, 1)
        )
        return direct_lat, palyra_lat
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


def _ttft_once(conn: http.client.HTTPConnection, target: Target) -> float:
    start = time.perf_counter()
    resp = _post(conn, target, target.stream_body)
    first: float | None = None
    while line := resp.readline():
        if first is None and _is_token(target.wire, line):
            first = (time.perf_counter() - start) * 1000
    if first is None:
        raise RuntimeError(f"{target.name}: the stream from {target.url} carried no text")
    return first


def time_to_first_token(
    direct: Target, palyra: Target, *, samples: int = 50
) -> tuple[float, float]:
    """Median milliseconds from sending a streaming request to the first text delta, both ways."""
    conns = (_connect(direct), _connect(palyra))
    try:
        for _ in range(5):
            _ttft_once(conns[0], direct)
            _ttft_once(conns[1], palyra)
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(samples):
            times[0].append(_ttft_once(conns[0], direct))
            times[1].append(_ttft_once(conns[1], palyra))
        return statistics.median(times[0]), statistics.median(times[1])
    finally:
        for conn in conns:
            conn.close()


def _lua_string(text: str) -> str:
    """A Lua long string; callers put it inside ``[ ]`` with spaces, as ``[[`` opens one too."""
    return "[==[" + text + "]==]"


def _wrk(wrk: str, target: Target, seconds: float, workdir: Path) -> Throughput:
    script = workdir / f"wrk-{re.sub(r'[^a-z0-9]+', '-', target.name.lower())}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(target.body.decode())}"]
    lines += [
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in target.headers.items()
    ]
    script.write_text("\n".join(lines) + "\n")
    args = [wrk, "-t2", f"-c{CONCURRENCY}", f"-d{seconds:g}s", "-s", str(script), target.url]
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


async def _async_load(target: Target, seconds: float) -> Throughput:
    """32 workers on one keep-alive pool, each sending the next request as soon as one returns."""
    done = failed = 0
    limits = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
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
        await asyncio.gather(*(worker(start + seconds) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    return Throughput(done / elapsed, failed, "httpx2")


def _hey(hey: str, target: Target, seconds: float) -> Throughput:
    """hey (one goroutine per connection, more CPU than wrk's event loop) at the same concurrency."""
    args = [
        hey,
        "-z",
        f"{seconds:g}s",
        "-c",
        str(CONCURRENCY),
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


def throughput(target: Target, seconds: float, workdir: Path) -> list[Throughput]:
    """Requests per second at concurrency 32 by every load generator installed (wrk, hey);
    an in-process async loop when neither is."""
    found: list[Throughput] = []
    wrk = shutil.which("wrk")
    if wrk is not None:
        found.append(_wrk(wrk, target, seconds, workdir))
    hey = shutil.which("hey")
    if hey is not None:
        found.append(_hey(hey, target, seconds))
    return found or [asyncio.run(_async_load(target, seconds))]
