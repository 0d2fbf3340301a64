"""Memory and start-up: idle RSS per worker, peak RSS under load, a soak, and CLI start-up."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from measure import Target
from procs import PALYRA, memory_kb, tree_pids, tree_rss_mb
from streams import one_stream


@dataclass(frozen=True, slots=True)
class Idle:
    """A freshly started gateway: each process's RSS and PSS (shared pages split between the
    processes that share them), in MB."""

    rss_mb: list[float]  # the main process first, then its workers
    pss_mb: list[float]

    @property
    def per_worker_rss_mb(self) -> float:
        """With workers, the largest worker's; alone, the one process's."""
        return max(self.rss_mb[1:]) if len(self.rss_mb) > 1 else self.rss_mb[0]

    @property
    def per_worker_pss_mb(self) -> float:
        return max(self.pss_mb[1:]) if len(self.pss_mb) > 1 else self.pss_mb[0]

    @property
    def total_pss_mb(self) -> float:
        return sum(self.pss_mb)


def idle(pid: int) -> Idle:
    pids = tree_pids(pid)
    return Idle([memory_kb(p) / 1024 for p in pids], [memory_kb(p, "Pss") / 1024 for p in pids])


@dataclass(slots=True)
class PeakRss:
    peak_mb: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)


@contextmanager
def sampling_rss(pid: int, every_s: float = 0.05) -> Iterator[PeakRss]:
    """The process tree's summed RSS, sampled in a thread while the block runs."""
    found = PeakRss()
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            mb = tree_rss_mb(pid)
            found.peak_mb = max(found.peak_mb, mb)
            found.samples.append((time.monotonic() - started, mb))
            stop.wait(every_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True, slots=True)
class Soak:
    seconds: float
    rate: float  # streams started per second
    sent: int
    failed: int
    rss_early_mb: float  # at the end of the first fifth (minute 2 of 10)
    rss_end_mb: float

    @property
    def growth(self) -> float:
        return self.rss_end_mb / self.rss_early_mb - 1 if self.rss_early_mb else float("nan")


async def _soak(target: Target, pid: int, seconds: float, rate: float) -> Soak:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = failed = 0
    early = 0.0
    running: set[asyncio.Task[tuple[float, int]]] = set()

    def finished(task: asyncio.Task[tuple[float, int]]) -> None:
        nonlocal failed
        running.discard(task)
        if task.cancelled() or task.exception() is not None:
            failed += 1

    while (now := loop.time() - started) < seconds:
        due = int(now * rate) + 1
        while sent < due:
            task = asyncio.create_task(one_stream(target))
            task.add_done_callback(finished)
            running.add(task)
            sent += 1
        if not early and now >= seconds / 5:
            early = tree_rss_mb(pid)
        await asyncio.sleep(0.01)
    if running:
        await asyncio.wait(set(running), timeout=30)
    return Soak(seconds, rate, sent, failed, early, tree_rss_mb(pid))


def soak(target: Target, pid: int, seconds: float, rate: float) -> Soak:
    """Streams started at a steady ``rate`` for ``seconds``; RSS at one fifth and at the end."""
    try:
        import uvloop

        return uvloop.run(_soak(target, pid, seconds, rate))
    except ImportError:
        return asyncio.run(_soak(target, pid, seconds, rate))


@dataclass(frozen=True, slots=True)
class Startup:
    version_s: float  # median wall time of `palyra version`
    chat_first_byte_s: float  # median time from starting `palyra chat` to its first output byte


def _first_byte(args: list[str], env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env))
    assert process.stdout is not None
    first = process.stdout.read(1)
    elapsed = time.perf_counter() - started
    _, err = process.communicate(timeout=30)
    if process.returncode != 0 or not first:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {err.decode(errors='replace')[-300:]}")
    return elapsed


def startup(daemon_url: str, env: Mapping[str, str], model: str, runs: int = 5) -> Startup:
    """``palyra version`` and ``palyra chat`` against the running daemon, each ``runs`` times."""
    cli = str(PALYRA)
    environ = {**os.environ, **env}
    version = [_first_byte([cli, "version"], environ) for _ in range(runs)]
    chat_args = [
        cli,
        "chat",
        "Say hello in a few words.",
        "--url",
        f"{daemon_url}/v1",
        "--model",
        model,
        "--token-env",
        "PALYRA_CLIENT_TOKEN",
    ]
    chat = [_first_byte(chat_args, environ) for _ in range(runs)]
    return Startup(statistics.median(version), statistics.median(chat))
