"""Palyra beside the upstream called directly and beside LiteLLM's proxy, in one run.

Starts two fake upstreams (one answering at once, one after 1.5 s) in their own processes,
``palyra serve``, and LiteLLM's proxy from its own hash-pinned venv (bench/.litellm-venv), then
drives the same bounded load at the three, alternating, and prints a table and writes JSON with
the medians and the ratios Palyra/direct and Palyra/LiteLLM. ``make bench`` runs it; ``--quick``
is a shorter run of every scenario. It is not a test: nothing in tests/ uses it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from footprint import idle, sampling_rss, soak, startup
from measure import Target, load_tools, sequential_latency, throughput, time_to_first_token
from procs import (
    ANTHROPIC_MODEL,
    CLIENT_TOKEN,
    FAKE_KEY,
    LITELLM_MASTER_KEY,
    LITELLM_VENV,
    OPENAI_MODEL,
    SLOW_MODEL,
    Running,
    child_env,
    daemon_config,
    free_port,
    install_litellm,
    litellm_config,
    litellm_env,
    litellm_ready,
    started,
    tree_cpu_s,
)
from streams import concurrent_streams

SLOW_LATENCY_MS = 1500
PROMPT = [{"role": "user", "content": "Say hello to the benchmark in a few words."}]
RESULTS = Path(__file__).resolve().parent / "last-run.json"


@dataclass(frozen=True, slots=True)
class Plan:
    """How long each scenario runs: the full run, or ``--quick``."""

    load_s: float
    ttft_samples: int
    stream_counts: tuple[int, ...]
    litellm_streams: int  # LiteLLM takes the smallest burst only (it needs seconds per hundred)
    soak_s: float
    soak_rate: float
    budget_s: int


FULL = Plan(5.0, 50, (500, 2000), 500, 600.0, 50.0, 1500)
QUICK = Plan(2.0, 10, (500, 2000), 500, 20.0, 50.0, 300)


@dataclass(frozen=True, slots=True)
class Side:
    """A gateway (or the upstream itself) as the client sees it."""

    name: str  # "direct", "palyra", "litellm"
    same: Target  # OpenAI client -> OpenAI upstream
    translated: Target | None  # OpenAI client -> Anthropic upstream (direct: Anthropic's own API)
    slow: Target  # streams against the upstream that waits 1.5 s
    pid: int | None  # whose memory to watch


def _chat(model: str, stream: bool) -> bytes:
    body = {"model": model, "messages": PROMPT, "max_tokens": 32, "stream": stream}
    return json.dumps(body).encode()


def _openai_target(name: str, port: int, token: str, model: str, path: str = "/v1") -> Target:
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    return Target(
        name,
        port,
        f"{path}/chat/completions",
        headers,
        _chat(model, False),
        _chat(model, True),
        "openai",
    )


def _anthropic_direct(port: int) -> Target:
    headers = {
        "content-type": "application/json",
        "x-api-key": FAKE_KEY,
        "anthropic-version": "2023-06-01",
    }
    return Target(
        "direct Anthropic",
        port,
        "/v1/messages",
        headers,
        _chat(ANTHROPIC_MODEL, False),
        _chat(ANTHROPIC_MODEL, True),
        "anthropic",
    )


def _sides(
    fake: int, slow: int, palyra: Running, palyra_port: int, litellm: tuple[Running, int] | None
) -> list[Side]:
    sides = [
        Side(
            "direct",
            _openai_target("direct", fake, FAKE_KEY, OPENAI_MODEL),
            _anthropic_direct(fake),
            _openai_target("direct slow", slow, FAKE_KEY, OPENAI_MODEL),
            None,
        ),
        Side(
            "palyra",
            _openai_target("Palyra", palyra_port, CLIENT_TOKEN, OPENAI_MODEL),
            _openai_target("Palyra translated", palyra_port, CLIENT_TOKEN, ANTHROPIC_MODEL),
            _openai_target("Palyra slow", palyra_port, CLIENT_TOKEN, SLOW_MODEL),
            palyra.process.pid,
        ),
    ]
    if litellm is not None:
        running, port = litellm
        sides.append(
            Side(
                "litellm",
                _openai_target("LiteLLM", port, LITELLM_MASTER_KEY, OPENAI_MODEL),
                _openai_target("LiteLLM translated", port, LITELLM_MASTER_KEY, ANTHROPIC_MODEL),
                _openai_target("LiteLLM slow", port, LITELLM_MASTER_KEY, SLOW_MODEL),
                running.process.pid,
            )
        )
    return sides


@dataclass(slots=True)
class Results:
    machine: dict[str, Any]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> side -> value
    notes: list[str] = field(default_factory=list)

    def put(self, metric: str, side: str, value: Any) -> None:
        self.figures.setdefault(metric, {})[side] = value


def _progress(text: str) -> None:
    print(f"  {text} ...", flush=True)


def _latency(sides: list[Side], results: Results) -> None:
    _progress("sequential latency, same format (15 warm-ups, 7 rounds of 25)")
    for side, lat in zip(sides, sequential_latency(*(s.same for s in sides)), strict=True):
        results.put("latency_median_ms", side.name, lat.median_ms)
        results.put("latency_p99_ms", side.name, lat.p99_ms)
    translated = [s for s in sides if s.translated is not None]
    _progress("sequential latency, translated (OpenAI client, Anthropic upstream)")
    for side, lat in zip(
        translated,
        sequential_latency(*(s.translated for s in translated if s.translated)),
        strict=True,
    ):
        results.put("translated_median_ms", side.name, lat.median_ms)
        results.put("translated_p99_ms", side.name, lat.p99_ms)


def _load(sides: list[Side], results: Results, plan: Plan, workdir: Path, suffix: str = "") -> None:
    for concurrency in (32, 128):
        for tool in load_tools():
            _progress(f"throughput c={concurrency} with {tool}{suffix}")
            for side in sides:  # alternating: direct, Palyra, LiteLLM, per tool and level
                cpu = tree_cpu_s(side.pid) if side.pid else 0.0
                got = throughput(side.same, plan.load_s, workdir, tool, concurrency)
                results.put(f"rps_c{concurrency}_{tool}{suffix}", side.name, got.rps)
                results.put(f"errors_c{concurrency}_{tool}{suffix}", side.name, got.errors)
                if side.pid and got.rps:
                    used = tree_cpu_s(side.pid) - cpu
                    per_request_us = used / (got.rps * plan.load_s) * 1e6
                    results.put(f"cpu_us_c{concurrency}_{tool}{suffix}", side.name, per_request_us)


def _first_token(sides: list[Side], results: Results, plan: Plan) -> None:
    _progress("time to first token (kept-alive and fresh connections) and chunk fidelity")
    got = time_to_first_token(*(s.same for s in sides), samples=plan.ttft_samples)
    for side, first in zip(sides, got, strict=True):
        results.put("ttft_kept_alive_ms", side.name, first.kept_alive_ms)
        results.put("ttft_fresh_ms", side.name, first.fresh_ms)
        results.put("stream_events", side.name, first.events)


def _streams(sides: list[Side], results: Results, plan: Plan) -> None:
    for count in plan.stream_counts:
        for side in sides:
            if side.name == "litellm" and count > plan.litellm_streams:
                continue
            _progress(f"{count} concurrent streams, upstream latency 1.5 s: {side.name}")
            if side.pid is None:
                run = concurrent_streams(side.slow, count)
                peak = None
            else:
                cpu = tree_cpu_s(side.pid)
                with sampling_rss(side.pid) as rss:
                    run = concurrent_streams(side.slow, count)
                peak = rss.peak_mb
                used_ms = (tree_cpu_s(side.pid) - cpu) * 1000
                results.put(f"streams{count}_cpu_ms_per_stream", side.name, used_ms / count)
            results.put(f"streams{count}_success", side.name, run.success)
            results.put(f"streams{count}_p50_s", side.name, run.p50_s)
            results.put(f"streams{count}_p99_s", side.name, run.p99_s)
            results.put(f"streams{count}_events", side.name, run.events)
            results.put(f"streams{count}_uneven", side.name, run.uneven)
            if peak is not None:
                results.put(f"streams{count}_peak_rss_mb", side.name, peak)
            if run.errors:
                results.notes.append(f"{side.name} at {count} streams: {'; '.join(run.errors)}")


def _idle(side: str, pid: int, results: Results, suffix: str = "") -> None:
    found = idle(pid)
    results.put(f"idle_rss_per_worker_mb{suffix}", side, found.per_worker_rss_mb)
    results.put(f"idle_pss_per_worker_mb{suffix}", side, found.per_worker_pss_mb)
    results.put(f"idle_rss_all_mb{suffix}", side, sum(found.rss_mb))
    results.put(f"idle_pss_all_mb{suffix}", side, found.total_pss_mb)


def _palyra(
    config: Path, env: dict[str, str], workdir: Path, port: int, workers: int
) -> contextlib.AbstractContextManager[Running]:
    args = ["serve", "--config", str(config), "--bind", f"127.0.0.1:{port}"]
    return started(
        f"palyra-serve-{workers}",
        [*args, "--workers", str(workers)],
        env,
        workdir,
        port=port,
        probe="/healthz",
        probe_headers={},
    )


def _litellm(
    workdir: Path, fake_url: str, slow_url: str
) -> contextlib.AbstractContextManager[Running]:
    port = free_port()
    config = workdir / "litellm.yaml"
    config.write_text(litellm_config(fake_url, slow_url))
    args = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return started(
        "litellm",
        args,
        litellm_env(workdir),
        workdir,
        port=port,
        probe="/health/liveliness",
        probe_headers={},
        ready_s=120.0,
    )


def run(
    workdir: Path,
    plan: Plan,
    workers: int,
    with_litellm: bool,
    redis_url: str = "",
    max_concurrency: int | None = None,
) -> Results:
    state = workdir / "state"
    state.mkdir(mode=0o700)
    env = child_env(state)
    fake_port, slow_port, daemon_port = free_port(), free_port(), free_port()
    fake_url, slow_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{slow_port}"
    config = workdir / "palyra.toml"
    config.write_text(
        daemon_config(
            fake_url, state, slow_url, redis_url=redis_url, max_concurrency=max_concurrency
        )
    )
    results = Results(_machine())
    if redis_url:
        shared = f"Redis at {redis_url}"
        if max_concurrency is not None:
            shared += f", max_concurrency = {max_concurrency} (leases in Redis)"
        results.notes.append(f"shared state: {shared}")
    probe = {"probe": "/v1/models", "probe_headers": {"authorization": f"Bearer {FAKE_KEY}"}}
    print("Starting the fake upstreams, Palyra and LiteLLM ...", flush=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            started(
                "fake-upstream",
                ["fake-upstream", "--port", str(fake_port)],
                env,
                workdir,
                port=fake_port,
                **probe,  # type: ignore[arg-type]
            )
        )
        stack.enter_context(
            started(
                "fake-upstream-slow",
                [
                    "fake-upstream",
                    "--port",
                    str(slow_port),
                    "--latency-ms",
                    str(SLOW_LATENCY_MS),
                ],
                env,
                workdir,
                port=slow_port,
                **probe,  # type: ignore[arg-type]
            )
        )
        palyra = stack.enter_context(_palyra(config, env, workdir, daemon_port, 1))
        litellm = None
        if with_litellm:
            running = stack.enter_context(_litellm(workdir, fake_url, slow_url))
            litellm = (running, int(running.base_url.rsplit(":", 1)[1]))
        time.sleep(1.0)
        _idle("palyra", palyra.process.pid, results)
        if litellm is not None:
            _idle("litellm", litellm[0].process.pid, results)
        sides = _sides(fake_port, slow_port, palyra, daemon_port, litellm)
        _latency(sides, results)
        _first_token(sides, results, plan)
        _load(sides, results, plan, workdir)
        _streams(sides, results, plan)
        _progress("CLI start-up: palyra version, palyra chat to its first byte")
        up = startup(palyra.base_url, env, OPENAI_MODEL)
        results.put("cli_version_s", "palyra", up.version_s)
        results.put("cli_chat_first_byte_s", "palyra", up.chat_first_byte_s)
        _progress(f"soak: {plan.soak_rate:g} streams/s for {plan.soak_s:g} s through Palyra")
        soaked = soak(sides[1].same, palyra.process.pid, plan.soak_s, plan.soak_rate)
        results.put("soak_rss_early_mb", "palyra", soaked.rss_early_mb)
        results.put("soak_rss_end_mb", "palyra", soaked.rss_end_mb)
        results.put("soak_growth", "palyra", soaked.growth)
        results.put("soak_failed", "palyra", soaked.failed)
        results.put("soak_sent", "palyra", soaked.sent)
    if workers > 1:
        _with_workers(workdir, env, config, fake_port, slow_port, plan, workers, results)
    return results


def _with_workers(
    workdir: Path,
    env: dict[str, str],
    config: Path,
    fake_port: int,
    slow_port: int,
    plan: Plan,
    workers: int,
    results: Results,
) -> None:
    """The same fakes' throughput through a daemon with one worker per core."""
    port = free_port()
    probe = {"authorization": f"Bearer {FAKE_KEY}"}
    with (
        started(
            "fake-upstream-w",
            ["fake-upstream", "--port", str(fake_port)],
            env,
            workdir,
            port=fake_port,
            probe="/v1/models",
            probe_headers=probe,
        ),
        _palyra(config, env, workdir, port, workers) as palyra,
    ):
        time.sleep(1.0)
        _idle("palyra", palyra.process.pid, results, f"_{workers}w")
        direct = Side(
            "direct",
            _openai_target("direct", fake_port, FAKE_KEY, OPENAI_MODEL),
            None,
            _openai_target("direct slow", slow_port, FAKE_KEY, OPENAI_MODEL),
            None,
        )
        through = Side(
            "palyra",
            _openai_target("Palyra", port, CLIENT_TOKEN, OPENAI_MODEL),
            None,
            _openai_target("Palyra slow", port, CLIENT_TOKEN, SLOW_MODEL),
            palyra.process.pid,
        )
        _load([direct, through], results, plan, workdir, f"_{workers}w")


def _machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # children inherit it


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("the benchmark ran past its budget; stopped everything")


@contextlib.contextmanager
def _bounded(budget_s: int) -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C and an alarm caps the run, so cleanup always gets to run."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(budget_s)
    try:
        yield
    finally:
        signal.alarm(0)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every scenario, shorter (~1-2 min)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="also measure throughput with this many workers (default: one per core; 1 skips)",
    )
    parser.add_argument(
        "--no-litellm", action="store_true", help="leave LiteLLM out (no venv is built)"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"default {RESULTS}")
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
        help="set max_concurrency on every provider (leases are then taken on every call; "
        "pick it above the load's concurrency so nothing waits)",
    )
    return parser.parse_args()


def main() -> int:
    from report import print_report, summary

    args = _arguments()
    plan = QUICK if args.quick else FULL
    with_litellm = not args.no_litellm
    if with_litellm and not litellm_ready():
        install_litellm()
    _raise_open_files()
    started_at = time.monotonic()
    try:
        with _bounded(plan.budget_s), tempfile.TemporaryDirectory(prefix="palyra-bench-") as tmp:
            results = run(
                Path(tmp),
                plan,
                max(1, args.workers),
                with_litellm,
                args.redis_url,
                args.max_concurrency,
            )
    except KeyboardInterrupt:
        print("\ninterrupted; stopped every process the bench started", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    results.machine["seconds"] = round(time.monotonic() - started_at)
    results.machine["plan"] = asdict(plan)
    data = {"machine": results.machine, "figures": results.figures, "notes": results.notes}
    data["summary"] = summary(results.figures, args.workers)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print_report(data)
    print(f"\nJSON: {args.json}  (total {results.machine['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
