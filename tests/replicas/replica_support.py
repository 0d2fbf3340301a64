"""Real ``palyra serve`` processes for the multi-replica tests: each one is started from a
config file and a state dir of its own, its log goes to a file, and its URL is read off the
``palyra serving on`` line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

PALYRA = "from palyra.cli.main import main; main()"
STARTUP_TIMEOUT_S = 40.0
_SERVING = re.compile(r"palyra serving on (http://127\.0\.0\.1:\d+)/v1")


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, token: str | None = None) -> httpx2.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx2.get(f"{self.url}{path}", headers=headers, timeout=10)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def palyra_env(state_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PALYRA_STATE_DIR": str(state_dir)}
    env.pop("PALYRA_CONFIG", None)
    env.update(extra or {})
    return env


def run_palyra(
    *args: str, env: Mapping[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """One ``palyra`` command to its end."""
    return subprocess.run(
        [sys.executable, "-c", PALYRA, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Replicas:
    """Starts replicas and stops every one still running at the end of the test."""

    root: Path
    started: list[Replica] = field(default_factory=list)

    def start(
        self,
        name: str,
        config: Path,
        *,
        env: Mapping[str, str],
        bind: str = "127.0.0.1:0",
        wait: bool = True,
    ) -> Replica:
        log = self.root / f"{name}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", PALYRA, "serve", "--config", str(config), "--bind", bind],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(env),
        )
        handle.close()
        replica = Replica(name, process, log)
        self.started.append(replica)
        if wait:
            self.wait_serving(replica)
        return replica

    def wait_serving(self, replica: Replica) -> None:
        def serving() -> bool:
            if replica.process.poll() is not None:
                raise AssertionError(
                    f"replica {replica.name} exited {replica.process.returncode}:\n"
                    f"{replica.log_text()}"
                )
            found = _SERVING.search(replica.log_text())
            if found:
                replica.url = found.group(1)
            return bool(found)

        wait_for(f"replica {replica.name} to serve", serving, STARTUP_TIMEOUT_S)

    def stop_all(self) -> None:
        for replica in self.started:
            replica.stop()


@contextmanager
def replicas(root: Path) -> Iterator[Replicas]:
    group = Replicas(root)
    try:
        yield group
    finally:
        group.stop_all()
