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
    fake_url: str, state_dir: Path, *, redis_url: str = "", max_concurrency: int | None = None
) -> str:
    """palyra.toml for the run: one OpenAI-compatible and one Anthropic provider, both the fake;
    with ``redis_url`` breakers (and leases, with ``max_concurrency``) live in Redis."""
    db = (state_dir / "palyra.db").as_posix()
    limit = "" if max_concurrency is None else f"max_concurrency = {max_concurrency}\n"
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
"""


def _spawn(
    name: str, args: list[str], env: Mapping[str, str], workdir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # own session: a Ctrl-C in the terminal reaches only us
            [str(PALYRA), *args],
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
    with httpx2.Client(timeout=1.0) as client:
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
) -> Iterator[Running]:
    """A child process that is ready on ``port``, stopped when the block ends however it ends."""
    process, log_path = _spawn(name, args, env, workdir)
    try:
        running = Running(name, process, f"http://127.0.0.1:{port}", log_path)
        _wait_ready(running, probe, probe_headers, timeout_s=20.0)
        yield running
    finally:
        _stop(process)


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
