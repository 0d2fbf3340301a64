"""Start the fake upstream and the daemon as child processes and always stop them again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx2

# The palyra CLI beside this interpreter; PALYRA_BENCH_CLI points at another build to compare.
PALYRA = Path(os.environ.get("PALYRA_BENCH_CLI") or Path(sys.executable).with_name("palyra"))
CLIENT_TOKEN = "palyra-bench-client-token"
FAKE_KEY = "fake-bench-key"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
SLOW_MODEL = "slow-gpt"  # OPENAI_MODEL on the fake that waits before answering
LITELLM_MASTER_KEY = "sk-palyra-bench-litellm"
BENCH_DIR = Path(__file__).resolve().parent
LITELLM_VENV = BENCH_DIR / ".litellm-venv"


@dataclass(frozen=True, slots=True)
class Running:
    """One started child: where it listens and where its output went (for failure reports)."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


def free_port() -> int:
    """A loopback port nobody holds right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def daemon_config(
    fake_url: str,
    state_dir: Path,
    slow_url: str | None = None,
    *,
    redis_url: str = "",
    max_concurrency: int | None = None,
) -> str:
    """palyra.toml for the run: one OpenAI-compatible and one Anthropic provider, both the fake,
    and with ``slow_url`` a third provider on the fake that waits before it answers; with
    ``redis_url`` breakers (and leases, with ``max_concurrency``) live in Redis."""
    db = (state_dir / "palyra.db").as_posix()
    limit = "" if max_concurrency is None else f"max_concurrency = {max_concurrency}\n"
    slow = (
        ""
        if slow_url is None
        else f"""
[[model_provider.providers]]
id = "fake-slow"
kind = "openai_compatible"
base_url = "{slow_url}/v1"
api_key = "env:FAKE_KEY"
timeout_ms = 60000
{limit}
[[model_provider.models]]
id = "{SLOW_MODEL}"
provider = "fake-slow"
model = "{OPENAI_MODEL}"
"""
    )
    return f"""version = 1

[daemon]
client_tokens = ["env:PALYRA_CLIENT_TOKEN"]

[storage]
url = "sqlite+aiosqlite:///{db}"
redis_url = "{redis_url}"

[model_provider]
max_retries = 0
default_chat_model = "{OPENAI_MODEL}"

[[model_provider.providers]]
id = "fake-openai"
kind = "openai_compatible"
base_url = "{fake_url}/v1"
api_key = "env:FAKE_KEY"
{limit}
[[model_provider.providers]]
id = "fake-anthropic"
kind = "anthropic"
base_url = "{fake_url}"
api_key = "env:FAKE_KEY"
{limit}
[[model_provider.models]]
id = "{OPENAI_MODEL}"
provider = "fake-openai"

[[model_provider.models]]
id = "{ANTHROPIC_MODEL}"
provider = "fake-anthropic"
{slow}"""


def litellm_config(fake_url: str, slow_url: str) -> str:
    """LiteLLM's proxy config for the same three models on the same fakes."""
    return f"""model_list:
  - model_name: {OPENAI_MODEL}
    litellm_params:
      model: openai/{OPENAI_MODEL}
      api_base: {fake_url}/v1
      api_key: {FAKE_KEY}
  - model_name: {ANTHROPIC_MODEL}
    litellm_params:
      model: anthropic/{ANTHROPIC_MODEL}
      api_base: {fake_url}
      api_key: {FAKE_KEY}
  - model_name: {SLOW_MODEL}
    litellm_params:
      model: openai/{OPENAI_MODEL}
      api_base: {slow_url}/v1
      api_key: {FAKE_KEY}
      timeout: 60
litellm_settings:
  num_retries: 0
  request_timeout: 60
  telemetry: false
general_settings:
  master_key: {LITELLM_MASTER_KEY}
"""


def _spawn(
    name: str, args: list[str], env: Mapping[str, str], workdir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = workdir / f"{name}.log"
    command = args if os.path.isabs(args[0]) else [str(PALYRA), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # own session: a Ctrl-C in the terminal reaches only us
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    return process, log_path


def _wait_ready(running: Running, probe: str, headers: Mapping[str, str], timeout_s: float) -> None:
    """Poll until ``probe`` answers 200; a child that exits or stays silent is a failure."""
    deadline = time.monotonic() + timeout_s
    with httpx2.Client(timeout=5.0) as client:  # a slow fake answers its probe slowly too
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                break
            with contextlib.suppress(httpx2.TransportError):
                if client.get(running.base_url + probe, headers=dict(headers)).status_code == 200:
                    return
            time.sleep(0.05)
    tail = running.log_path.read_text(errors="replace")[-2000:]
    state = (
        f"exited with {running.process.returncode}"
        if running.process.poll() is not None
        else f"did not answer {probe} within {timeout_s:.0f} s"
    )
    raise RuntimeError(f"{running.name} {state}; its output ({running.log_path}):\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a short grace period, then SIGKILL: nothing we started outlives the run."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def started(
    name: str,
    args: list[str],
    env: Mapping[str, str],
    workdir: Path,
    *,
    port: int,
    probe: str,
    probe_headers: Mapping[str, str],
    ready_s: float = 20.0,
) -> Iterator[Running]:
    """A child process that is ready on ``port``, stopped when the block ends however it ends.
    ``args`` starting with an absolute path run that program, otherwise the palyra CLI."""
    process, log_path = _spawn(name, args, env, workdir)
    try:
        running = Running(name, process, f"http://127.0.0.1:{port}", log_path)
        _wait_ready(running, probe, probe_headers, timeout_s=ready_s)
        yield running
    finally:
        _stop(process)


def litellm_env(workdir: Path) -> dict[str, str]:
    """LiteLLM's proxy offline: its cost map from the wheel, no telemetry, its own venv first."""
    env = dict(os.environ)
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_MASTER_KEY=LITELLM_MASTER_KEY,
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        PYTHONUNBUFFERED="1",
        HOME=str(workdir),
    )
    env.pop("PYTHONPATH", None)
    return env


def litellm_ready() -> bool:
    return (LITELLM_VENV / "bin" / "litellm").exists()


def install_litellm() -> None:
    """bench/.litellm-venv from the hash-pinned requirements (a few minutes, once)."""
    if litellm_ready():
        return
    print("Installing LiteLLM's proxy into bench/.litellm-venv (hash-pinned, once) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    requirements = BENCH_DIR / "litellm-requirements.txt"
    subprocess.run([*pip, "--require-hashes", "-r", str(requirements)], check=True)


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS``/``VmHWM`` from status, or ``Pss`` from smaps_rollup, in kB (0 once gone)."""
    try:
        if field == "Pss":
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        else:
            text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process tree has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def tree_rss_mb(pid: int) -> float:
    return sum(memory_kb(p) for p in tree_pids(pid)) / 1024


def child_env(state_dir: Path) -> dict[str, str]:
    """The environment both children get: our own, plus the secrets the config refers to."""
    env = dict(os.environ)
    env.update(
        PALYRA_STATE_DIR=str(state_dir),
        PALYRA_CLIENT_TOKEN=CLIENT_TOKEN,
        FAKE_KEY=FAKE_KEY,
        PYTHONUNBUFFERED="1",
    )
    return env
