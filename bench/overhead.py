"""What Palyra adds on top of an upstream: latency, throughput and time to first token.

Starts the fake upstream and ``palyra serve`` as separate processes on free loopback ports, then
measures the same requests sent straight to the fake and through the daemon, side by side. Run it
with ``make bench``. It is not a test: nothing in tests/ uses it and CI does not run it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import (
    CONCURRENCY,
    Latency,
    Target,
    Throughput,
    sequential_latency,
    throughput,
    time_to_first_token,
)
from procs import (
    ANTHROPIC_MODEL,
    CLIENT_TOKEN,
    FAKE_KEY,
    OPENAI_MODEL,
    child_env,
    daemon_config,
    free_port,
    started,
)

BUDGET_S = 115  # the whole run, startup and teardown included, stays under two minutes
LOAD_SECONDS = 5.0
TARGET_ADDED_MS = 1.0
TARGET_THROUGHPUT_SHARE = 1 / 3
PROMPT = [{"role": "user", "content": "Say hello to the benchmark in a few words."}]


@dataclass(frozen=True, slots=True)
class Path_:
    """A client-facing route through Palyra and the direct call it should be compared with."""

    label: str
    direct: Target
    palyra: Target


def _targets(fake_port: int, daemon_port: int) -> list[Path_]:
    def chat(model: str, stream: bool) -> bytes:
        body = {"model": model, "messages": PROMPT, "max_tokens": 32, "stream": stream}
        return json.dumps(body).encode()

    def messages(stream: bool) -> bytes:
        body = {"model": ANTHROPIC_MODEL, "messages": PROMPT, "max_tokens": 32, "stream": stream}
        return json.dumps(body).encode()

    json_type = {"content-type": "application/json"}
    to_palyra = json_type | {"authorization": f"Bearer {CLIENT_TOKEN}"}
    openai_direct = Target(
        "direct OpenAI",
        fake_port,
        "/v1/chat/completions",
        json_type | {"authorization": f"Bearer {FAKE_KEY}"},
        chat(OPENAI_MODEL, False),
        chat(OPENAI_MODEL, True),
        "openai",
    )
    anthropic_direct = Target(
        "direct Anthropic",
        fake_port,
        "/v1/messages",
        json_type | {"x-api-key": FAKE_KEY, "anthropic-version": "2023-06-01"},
        messages(False),
        messages(True),
        "anthropic",
    )
    return [
        Path_(
            "OpenAI client -> OpenAI upstream",
            openai_direct,
            Target(
                "Palyra OpenAI",
                daemon_port,
                "/v1/chat/completions",
                to_palyra,
                chat(OPENAI_MODEL, False),
                chat(OPENAI_MODEL, True),
                "openai",
            ),
        ),
        Path_(
            "OpenAI client -> Anthropic upstream",
            anthropic_direct,
            Target(
                "Palyra OpenAI->Anthropic",
                daemon_port,
                "/v1/chat/completions",
                to_palyra,
                chat(ANTHROPIC_MODEL, False),
                chat(ANTHROPIC_MODEL, True),
                "openai",
            ),
        ),
    ]


@dataclass(slots=True)
class Result:
    path: Path_
    latency: tuple[Latency, Latency] | None = None
    load: list[tuple[Throughput, Throughput]] | None = None  # one pair per load generator
    ttft: tuple[float, float] | None = None
    skipped: str | None = None


def _measure(path: Path_, workdir: Path, *, with_load: bool) -> Result:
    result = Result(path)
    print(f"  {path.label}: sequential latency ...", flush=True)
    result.latency = sequential_latency(path.direct, path.palyra)
    if with_load:
        print(f"  {path.label}: throughput at concurrency {CONCURRENCY} ...", flush=True)
        # Alternate direct and Palyra per tool so drift on the machine hits both alike.
        result.load = list(
            zip(
                throughput(path.direct, LOAD_SECONDS, workdir),
                throughput(path.palyra, LOAD_SECONDS, workdir),
                strict=True,
            )
        )
    print(f"  {path.label}: time to first token ...", flush=True)
    result.ttft = time_to_first_token(path.direct, path.palyra)
    return result


def _row(name: str, direct: float, palyra: float, unit: str, *, added: bool) -> str:
    extra = f"{palyra - direct:+9.3f} {unit}" if added else " " * (10 + len(unit))
    return f"  {name:<24}{direct:>11.3f} {unit:<4}{palyra:>11.3f} {unit:<4}{palyra / direct:>8.2f}x  {extra}"


def _report(results: list[Result], workers: int, shared: str = "") -> None:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    print()
    print(
        f"Machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    print(
        f"Daemon: {workers} worker process{'es' if workers > 1 else ''}. Fake upstream, daemon "
        "and load generator share these cores; compare ratios, not absolute numbers, across "
        "machines."
    )
    print(f"Shared state: {shared or 'per process (no redis_url)'}")
    for result in results:
        print()
        print(f"{result.path.label}")
        if result.skipped:
            print(f"  skipped: {result.skipped}")
            continue
        print(f"  {'':<24}{'direct':>16}{'via Palyra':>16}{'ratio':>9}  {'added':>13}")
        if result.latency:
            d, p = result.latency
            print(_row("latency median", d.median_ms, p.median_ms, "ms", added=True))
            print(_row("latency p99", d.p99_ms, p.p99_ms, "ms", added=True))
        for d_load, p_load in result.load or []:
            print(
                _row(f"throughput c={CONCURRENCY}", d_load.rps, p_load.rps, "rq/s", added=False)
                + f" ({d_load.tool}, {LOAD_SECONDS:g} s each)"
            )
            if d_load.errors or p_load.errors:
                print(
                    f"  !! failed requests under load: direct {d_load.errors}, "
                    f"Palyra {p_load.errors}"
                )
        if result.ttft:
            print(_row("time to first token", *result.ttft, "ms", added=True))
    _verdict(results[0])


def _verdict(main: Result) -> None:
    if main.latency is None or main.load is None:
        return
    added = main.latency[1].median_ms - main.latency[0].median_ms
    shares = {d.tool: p.rps / d.rps for d, p in main.load}
    print()
    print("Targets (OpenAI -> OpenAI path):")
    print(
        f"  added median latency {added:.3f} ms (target <= {TARGET_ADDED_MS:.1f} ms): "
        f"{'met' if added <= TARGET_ADDED_MS else 'MISSED'}"
    )
    for tool, share in shares.items():
        print(
            f"  throughput {share:.2f} of direct with {tool} "
            f"(target >= {TARGET_THROUGHPUT_SHARE:.2f}): "
            f"{'met' if share >= TARGET_THROUGHPUT_SHARE else 'MISSED'}"
        )


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"the benchmark ran past its {BUDGET_S} s budget; stopped everything")


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C and an alarm caps the run, so cleanup always gets to run."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(BUDGET_S)
    try:
        yield
    finally:
        signal.alarm(0)


def run(
    workdir: Path, workers: int, redis_url: str = "", max_concurrency: int | None = None
) -> list[Result]:
    state = workdir / "state"
    state.mkdir(mode=0o700)
    env = child_env(state)
    fake_port, daemon_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    config = workdir / "palyra.toml"
    config.write_text(
        daemon_config(fake_url, state, redis_url=redis_url, max_concurrency=max_concurrency)
    )
    results: list[Result] = []
    print("Starting the fake upstream and the daemon ...", flush=True)
    with (
        started(
            "fake-upstream",
            ["fake-upstream", "--port", str(fake_port)],
            env,
            workdir,
            port=fake_port,
            probe="/v1/models",
            probe_headers={"authorization": f"Bearer {FAKE_KEY}"},
        ),
        started(
            "palyra-serve",
            [
                "serve",
                "--config",
                str(config),
                "--bind",
                f"127.0.0.1:{daemon_port}",
                "--workers",
                str(workers),
            ],
            env,
            workdir,
            port=daemon_port,
            probe="/healthz",
            probe_headers={},
        ),
    ):
        for index, path in enumerate(_targets(fake_port, daemon_port)):
            try:
                results.append(_measure(path, workdir, with_load=True))
            except RuntimeError as exc:
                if index == 0:
                    raise
                results.append(Result(path, skipped=str(exc)))
    return results


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes for palyra serve (default 1; the bench then compares the same "
        "fake upstream, called directly, with the daemon at this setting)",
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="run the daemon with this [storage] redis_url (breakers, and leases with "
        "--max-concurrency, in Redis), to measure what shared state costs; default: none",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="set max_concurrency on both providers (leases are then taken on every call; "
        "pick it above the load's concurrency so nothing waits)",
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    if args.workers < 1:
        print("bench: --workers must be at least 1", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed (apt-get install wrk); measuring throughput with an "
            "in-process async httpx2 loop instead, which is slower and caps both sides lower."
        )
    started_at = time.monotonic()
    try:
        with _bounded(), tempfile.TemporaryDirectory(prefix="palyra-bench-") as tmp:
            results = run(Path(tmp), args.workers, args.redis_url, args.max_concurrency)
    except KeyboardInterrupt:
        print("\ninterrupted; stopped the fake upstream and the daemon", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    shared = ""
    if args.redis_url:
        shared = f"Redis at {args.redis_url}"
        if args.max_concurrency is not None:
            shared += f", max_concurrency = {args.max_concurrency} (leases in Redis)"
    _report(results, args.workers, shared)
    print(f"\n(total {time.monotonic() - started_at:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
