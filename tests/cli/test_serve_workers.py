"""``palyra serve --workers 2``: real daemon processes in front of a real fake upstream, driven
with the official openai SDK. Worker processes are found as the parent's children in /proc."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import openai
import orjson
import pytest
import typer

from palyra.cli.serve import load_config
from palyra.testing import FakeUpstream

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

TOKEN = "palyra-test-client-token-workers"
CHAT_ROUTE = "/v1/chat/completions"
STARTUP_TIMEOUT_S = 15.0


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    state_dir: Path

    def client(self) -> openai.OpenAI:
        # A new client per phase: a pooled connection to a killed worker would be reset.
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=TOKEN, max_retries=0)

    def workers(self) -> set[int]:
        return children(self.process.pid)

    def published(self) -> float:
        """Chat requests in the workers' metrics snapshot files (what a sibling can see)."""
        total = 0.0
        for path in (self.state_dir / "run" / f"serve-{self.process.pid}").glob("worker-*.json"):
            snapshot = orjson.loads(path.read_bytes())
            for labels, value in snapshot["counters"]["palyra_requests_total"]:
                total += value if labels[0] == CHAT_ROUTE else 0.0
        return total

    def metrics(self) -> str:
        response = httpx2.get(
            f"{self.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        assert response.status_code == 200, response.text
        return response.text


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren.
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def requests_counted(text: str, route: str = CHAT_ROUTE) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("palyra_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={"fake-key"}) as upstream:
        yield upstream


@pytest.fixture
def start(tmp_path: Path, fake: FakeUpstream) -> Iterator[Callable[..., Daemon]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, grace_s: float = 10.0) -> Daemon:
        config = tmp_path / "palyra.toml"
        config.write_text(
            f"""version = 1
[daemon]
client_tokens = ["env:PALYRA_CLIENT_TOKEN"]
shutdown_grace_s = {grace_s}

[model_provider]
max_retries = 0
default_chat_model = "gpt-4o-mini"

[[model_provider.providers]]
id = "fake-openai"
kind = "openai_compatible"
base_url = "{fake.openai_base_url}"
api_key = "env:FAKE_KEY"

[[model_provider.models]]
id = "gpt-4o-mini"
provider = "fake-openai"
"""
        )
        env = {
            **os.environ,
            "PALYRA_STATE_DIR": str(tmp_path / "state"),
            "PALYRA_CLIENT_TOKEN": TOKEN,
            "FAKE_KEY": "fake-key",
        }
        env.pop("PALYRA_CONFIG", None)
        log = tmp_path / "serve.log"
        command = "from palyra.cli.main import main; main()"
        with log.open("wb") as out:
            serve = ["serve", "--config", str(config), "--bind", "127.0.0.1:0", *args]
            process = subprocess.Popen(
                [sys.executable, "-c", command, *serve],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        started.append(process)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            match = re.search(r"palyra serving on (http://127\.0\.0\.1:\d+)/v1", log.read_text())
            if match:
                return Daemon(process, match.group(1), log, tmp_path / "state")
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)

    yield start
    for process in started:
        workers = children(process.pid)
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def ask(client: openai.OpenAI, text: str) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content or ""


def test_two_workers_answer_and_metrics_count_every_request(start: Callable[..., Daemon]) -> None:
    daemon = start("--workers", "2")
    wait_for("two worker processes", lambda: len(daemon.workers()) == 2)
    client = daemon.client()
    assert ask(client, "hello workers") == "You said: hello workers"
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream to me"}],
        stream=True,
    ) as stream:
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == "You said: stream to me"
    for i in range(8):  # new connections, so the kernel may hand them to either worker
        assert ask(daemon.client(), f"number {i}") == f"You said: number {i}"
    expected = 10

    # Once every worker has published its figures, every scrape (a new connection each, so any
    # worker may answer) shows the total, and the breaker gauge of both workers by worker label.
    wait_for(f"the snapshots to hold {expected} requests", lambda: daemon.published() == expected)
    for _ in range(6):
        text = daemon.metrics()
        assert requests_counted(text) == expected
        for worker in (0, 1):
            assert re.search(rf'^palyra_breaker_state\{{.*worker="{worker}"\}} 0$', text, re.M)
    assert len(daemon.workers()) == 2


def test_sigterm_lets_the_inflight_stream_finish_then_everything_exits(
    start: Callable[..., Daemon], fake: FakeUpstream
) -> None:
    daemon = start("--workers", "2")
    wait_for("two worker processes", lambda: len(daemon.workers()) == 2)
    workers = daemon.workers()
    fake.settings.stream_chunk_delay_ms = 60  # ~14 chunks: the stream lasts ~0.8 s
    words = "one two three four five six seven eight nine ten"
    with daemon.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": words}], stream=True
    ) as stream:
        chunks = iter(stream)
        first = next(chunks)
        daemon.process.send_signal(signal.SIGTERM)
        rest = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == f"You said: {words}"
    assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "stop"
    assert daemon.process.wait(timeout=15) == 0, daemon.log.read_text()
    assert not any(alive(pid) for pid in workers)
    log = daemon.log.read_text()
    assert "palyra stopped" in log and "Traceback" not in log


def test_a_killed_worker_is_replaced_and_no_count_is_lost(start: Callable[..., Daemon]) -> None:
    daemon = start("--workers", "2")
    wait_for("two worker processes", lambda: len(daemon.workers()) == 2)
    for i in range(6):
        assert ask(daemon.client(), f"before {i}") == f"You said: before {i}"
    # A worker killed outright loses what it counted since its last snapshot (at most ~1 s).
    wait_for("the snapshots to hold 6 requests", lambda: daemon.published() == 6)
    assert requests_counted(daemon.metrics()) == 6

    before = daemon.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        "a replacement worker",
        lambda: len(now := daemon.workers()) == 2 and victim not in now,
    )
    for i in range(6):
        assert ask(daemon.client(), f"after {i}") == f"You said: after {i}"
    # The killed worker's figures were kept (it had published them), the new ones added.
    wait_for("/metrics to count 12", lambda: requests_counted(daemon.metrics()) == 12)
    log = daemon.log.read_text()
    assert re.search(r"worker \d was killed by SIGKILL .*; restarting it", log), log
    assert daemon.process.poll() is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "input should be greater than or equal to 1; fix the value"),
        (
            '"two"',
            "input should be a valid integer, unable to parse string as an integer; fix the value",
        ),
    ],
)
def test_bad_workers_setting_is_a_config_error_with_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, problem: str
) -> None:
    config = tmp_path / "palyra.toml"
    config.write_text(f"version = 1\n[daemon]\nworkers = {value}\n")
    with pytest.raises(typer.Exit) as info:
        load_config(config, {})
    assert info.value.exit_code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"palyra serve: {config}:3: daemon.workers: {problem}"
    ]


def test_workers_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "palyra.toml"
    config.write_text("version = 1\n")
    assert load_config(config, {}).daemon.workers == 1
    assert load_config(config, {"PALYRA_DAEMON__WORKERS": "3"}).daemon.workers == 3
