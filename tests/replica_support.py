"""Several ``palyra serve`` processes on one config, as replicas behind a load balancer would be.

``Replicas(workdir, config_text, count=3)`` writes the config, starts ``count`` daemons on free
loopback ports (each its own state directory; the store and Redis are whatever the config
names, so they share those), waits until each answers ``/healthz``, and stops them all when the
``with`` block ends, however it ends. Each replica's output goes to a log file the failure
message quotes. Clients: ``replica.client()`` (the official openai SDK) or ``replica.http``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx2
import openai

CLIENT_TOKEN = "palyra-test-client-token-replicas"
STARTUP_TIMEOUT_S = 30.0
_SERVE = "from palyra.cli.main import main; main()"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    index: int
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    state_dir: Path
    http: httpx2.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx2.Client(
            base_url=self.url, headers={"authorization": f"Bearer {CLIENT_TOKEN}"}, timeout=30
        )

    def client(self, token: str = CLIENT_TOKEN) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=token, max_retries=0)

    def metrics(self) -> str:
        response = self.http.get("/metrics")
        response.raise_for_status()
        return response.text

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Replicas:
    """``count`` daemons on one config; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        config_text: str,
        *,
        count: int = 3,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.config = workdir / "palyra.toml"
        self.config_text = config_text
        self.count = count
        self.env = {**os.environ, "PALYRA_CLIENT_TOKEN": CLIENT_TOKEN, **(env or {})}
        self.env.pop("PALYRA_CONFIG", None)
        self.replicas: list[Replica] = []

    def __enter__(self) -> list[Replica]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text)
        try:
            for index in range(self.count):
                self.replicas.append(self._spawn(index))
            for replica in self.replicas:
                self._wait_ready(replica)
        except BaseException:
            self.stop()
            raise
        return self.replicas

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``palyra ARGS --config <the replicas' config>`` as a user would, in its own
        state directory."""
        env = {**self.env, "PALYRA_STATE_DIR": str(self.workdir / "cli-state")}
        return subprocess.run(
            [sys.executable, "-c", _SERVE, *args, "--config", str(self.config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stop(self) -> None:
        """SIGTERM every replica, then SIGKILL what has not exited after a grace period."""
        for replica in self.replicas:
            replica.http.close()
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            try:
                replica.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(timeout=5)
        self.replicas = []

    def _spawn(self, index: int) -> Replica:
        port = free_port()
        state = self.workdir / f"replica-{index}"
        state.mkdir(mode=0o700, exist_ok=True)
        log = self.workdir / f"replica-{index}.log"
        env = {**self.env, "PALYRA_STATE_DIR": str(state)}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-c", _SERVE, "serve", "--config", str(self.config)),
                    *("--bind", f"127.0.0.1:{port}"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return Replica(index, process, f"http://127.0.0.1:{port}", log, state)

    @staticmethod
    def _wait_ready(replica: Replica) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if replica.process.poll() is not None:
                break
            with contextlib.suppress(httpx2.TransportError):
                if replica.http.get("/healthz").status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"replica {replica.index} did not start ({replica.log}):\n{replica.output()[-3000:]}"
        )


@contextlib.contextmanager
def started_replicas(
    workdir: Path, config_text: str, *, count: int = 3, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Replicas, list[Replica]]]:
    """``Replicas`` as a context manager that also hands back the set (for ``cli``)."""
    group = Replicas(workdir, config_text, count=count, env=env)
    with group as replicas:
        yield group, replicas
