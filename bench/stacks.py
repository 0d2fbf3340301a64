"""Well-kept components against our own code: granian against uvicorn with our coalescing
protocol (the same Palyra app), and aiohttp's client against our httptools pool.

Run with ``make bench-stacks`` (it installs bench/requirements-stacks.txt, hash-pinned, into the
venv: granian and aiohttp are not dependencies of Palyra). Prints a table and writes JSON. The
server side is measured from outside (wrk and hey, the gateway's CPU per request); the client
side in this process, 32 concurrent callers against the fake upstream, CPU per request from
``time.process_time``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Target, load_tools, sequential_latency, throughput
from procs import (
    BENCH_DIR,
    CLIENT_TOKEN,
    FAKE_KEY,
    OPENAI_MODEL,
    child_env,
    daemon_config,
    free_port,
    started,
    tree_cpu_s,
)

RESULTS = BENCH_DIR / "last-stacks.json"
BODY = json.dumps(
    {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": "Say hello to the benchmark in a few words."}],
        "max_tokens": 32,
    }
).encode()


def _target(name: str, port: int) -> Target:
    headers = {"content-type": "application/json", "authorization": f"Bearer {CLIENT_TOKEN}"}
    stream = BODY.replace(b'"max_tokens": 32', b'"max_tokens": 32, "stream": true')
    return Target(name, port, "/v1/chat/completions", headers, BODY, stream, "openai")


def servers(workdir: Path, load_s: float, rounds: int) -> dict[str, Any]:
    state = workdir / "state"
    state.mkdir(mode=0o700)
    env = child_env(state)
    fake_port, uvicorn_port, granian_port = free_port(), free_port(), free_port()
    config = workdir / "palyra.toml"
    config.write_text(daemon_config(f"http://127.0.0.1:{fake_port}", state))
    granian_env = {
        **env,
        "PALYRA_CONFIG": str(config),
        "PYTHONPATH": ":".join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p),
    }
    granian = str(Path(sys.executable).with_name("granian"))
    probe = {"authorization": f"Bearer {FAKE_KEY}"}
    out: dict[str, Any] = {}
    with (
        started(
            "fake-upstream",
            ["fake-upstream", "--port", str(fake_port)],
            env,
            workdir,
            port=fake_port,
            probe="/v1/models",
            probe_headers=probe,
        ),
        started(
            "palyra-uvicorn",
            ["serve", "--config", str(config), "--bind", f"127.0.0.1:{uvicorn_port}"],
            env,
            workdir,
            port=uvicorn_port,
            probe="/healthz",
            probe_headers={},
        ) as uvicorn,
        started(
            "palyra-granian",
            [
                granian,
                "--interface",
                "asgi",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(granian_port),
                "--workers",
                "1",
                "--loop",
                "uvloop",
                "--no-log",
                "granian_app:app",
            ],
            granian_env,
            workdir,
            port=granian_port,
            probe="/healthz",
            probe_headers={},
        ) as granian_run,
    ):
        sides = {
            "uvicorn+coalescing": (_target("uvicorn", uvicorn_port), uvicorn.process.pid),
            "granian": (_target("granian", granian_port), granian_run.process.pid),
        }
        print("  servers: sequential latency ...", flush=True)
        latencies = sequential_latency(*(t for t, _ in sides.values()))
        for name, lat in zip(sides, latencies, strict=True):
            out.setdefault(name, {})["latency_median_ms"] = lat.median_ms
            out[name]["latency_p99_ms"] = lat.p99_ms
        for tool in load_tools():
            for level in (32, 128):
                print(f"  servers: throughput c={level} with {tool} ...", flush=True)
                runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
                for _ in range(rounds):
                    for name, (target, pid) in sides.items():
                        cpu = tree_cpu_s(pid)
                        got = throughput(target, load_s, workdir, tool, level)
                        used = tree_cpu_s(pid) - cpu
                        runs[name].append((got.rps, used / max(1.0, got.rps * load_s) * 1e6))
                for name, pairs in runs.items():
                    out[name][f"rps_c{level}_{tool}"] = statistics.median(p[0] for p in pairs)
                    out[name][f"cpu_us_c{level}_{tool}"] = statistics.median(p[1] for p in pairs)
    return out


Caller = Callable[[], Awaitable[int]]


async def _drive(call: Caller, seconds: float, concurrency: int) -> tuple[float, float]:
    """Requests per second and CPU microseconds per request of this process."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await call() == 200:
                done += 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return done / wall, cpu / max(done, 1) * 1e6


async def _clients(fake_port: int, seconds: float, rounds: int) -> dict[str, Any]:
    import aiohttp

    from palyra.providers.upstream.client import send_bytes
    from palyra.providers.upstream.guard import make_upstream_client

    url = f"http://127.0.0.1:{fake_port}/v1/chat/completions"
    headers = {"content-type": "application/json", "authorization": f"Bearer {FAKE_KEY}"}
    stream_body = BODY.replace(b'"max_tokens": 32', b'"max_tokens": 32, "stream": true')
    ours = make_upstream_client(allow_private=True, timeout_s=30)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def ours_whole() -> int:
        return (await send_bytes(ours, "POST", url, headers, BODY)).status_code

    async def aiohttp_whole() -> int:
        async with session.post(url, data=BODY, headers=headers) as response:
            await response.read()
            return response.status

    async def ours_stream() -> int:
        async with ours.stream("POST", url, content=stream_body, headers=headers) as response:
            async for _ in response.aiter_bytes():
                pass
            return response.status_code

    async def aiohttp_stream() -> int:
        async with session.post(url, data=stream_body, headers=headers) as response:
            async for _ in response.content.iter_any():
                pass
            return response.status

    pairs = {
        "whole": {"httptools pool": ours_whole, "aiohttp": aiohttp_whole},
        "stream": {"httptools pool": ours_stream, "aiohttp": aiohttp_stream},
    }
    out: dict[str, Any] = {}
    try:
        for kind, callers in pairs.items():
            for concurrency in (1, 32):
                print(f"  clients: {kind} answers, {concurrency} callers ...", flush=True)
                runs: dict[str, list[tuple[float, float]]] = {name: [] for name in callers}
                for call in callers.values():
                    await _drive(call, 0.5, concurrency)  # warm the pool
                for _ in range(rounds):
                    for name, call in callers.items():
                        runs[name].append(await _drive(call, seconds, concurrency))
                for name, got in runs.items():
                    row = out.setdefault(name, {})
                    row[f"{kind}_c{concurrency}_rps"] = statistics.median(g[0] for g in got)
                    row[f"{kind}_c{concurrency}_cpu_us"] = statistics.median(g[1] for g in got)
    finally:
        await ours.aclose()
        await session.close()
    return out


def clients(workdir: Path, seconds: float, rounds: int) -> dict[str, Any]:
    state = workdir / "state-c"
    state.mkdir(mode=0o700)
    env = child_env(state)
    port = free_port()
    with started(
        "fake-upstream-c",
        ["fake-upstream", "--port", str(port)],
        env,
        workdir,
        port=port,
        probe="/v1/models",
        probe_headers={"authorization": f"Bearer {FAKE_KEY}"},
    ):
        import uvloop

        return uvloop.run(_clients(port, seconds, rounds))


def _print(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    names = list(rows)
    metrics = list(rows[names[0]])
    print("| | " + " | ".join(names) + f" | {names[1]}/{names[0]} |")
    print("|---|" + "---|" * (len(names) + 1))
    for metric in metrics:
        values = [rows[n][metric] for n in names]
        ratio = values[1] / values[0] if values[0] else float("nan")
        print(f"| {metric} | " + " | ".join(f"{v:,.3f}" for v in values) + f" | {ratio:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per load run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="palyra-stacks-") as tmp:
        found = {
            "servers": servers(Path(tmp), args.seconds, args.rounds),
            "clients": clients(Path(tmp), args.seconds, args.rounds),
        }
    RESULTS.write_text(json.dumps(found, indent=2) + "\n")
    _print("Server (same Palyra app; gateway CPU per request from /proc)", found["servers"])
    _print("Upstream client (this process; CPU per request from process_time)", found["clients"])
    print(f"\nJSON: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
