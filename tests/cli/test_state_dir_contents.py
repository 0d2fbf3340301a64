"""What a real run writes into the state dir is exactly what the README's "What is stored where"
lists: a daemon started from the built-in setup, one request through the openai SDK, a secret and
a token added with the CLI while it runs, then a clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from palyra.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"
STARTUP_TIMEOUT_S = 30.0
SERVE = "from palyra.cli.main import main; main()"
# Present only while a process has the database open (SQLite's write-ahead log and its index).
WHILE_OPEN = {"palyra.db-wal", "palyra.db-shm"}
AFTER_STOP = {"client_token", "palyra.db", "tiktoken", "vault.key"}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PALYRA_", "TIKTOKEN_"))}
    env["PALYRA_STATE_DIR"] = str(state)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", "--bind", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (found := re.search(r"serving on (http://127\.0\.0\.1:\d+/v1)", log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield process, found.group(1), state
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def names(state: Path) -> set[str]:
    return {p.name for p in state.iterdir()}


def stored_where_paragraph() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("What is stored where")
    return text[start : text.index("\n\n", start)]


def test_a_real_run_writes_only_what_the_readme_lists(
    daemon: tuple[subprocess.Popen[bytes], str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    process, url, state = daemon
    token = (state / "client_token").read_text().strip()
    client = openai.OpenAI(base_url=url, api_key=token, max_retries=0)
    reply = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "count my tokens"}]
    )
    assert reply.choices[0].message.content
    assert "tiktoken" not in names(state)  # loaded when a count first needs it, not at start
    near_the_limit = client.chat.completions.create(  # too close to the window to skip counting
        model="default",
        messages=[{"role": "user", "content": "count my tokens"}],
        max_tokens=127_980,
    )
    assert near_the_limit.choices[0].message.content
    monkeypatch.setenv("PALYRA_STATE_DIR", str(state))
    runner = CliRunner()
    assert runner.invoke(app, ["vault", "put", "global/k"], input="a-value").exit_code == 0
    assert runner.invoke(app, ["token", "create", "--name", "ci"]).exit_code == 0
    running = names(state)
    assert AFTER_STOP <= running <= AFTER_STOP | WHILE_OPEN, running
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert names(state) == AFTER_STOP
    cached = list((state / "tiktoken").iterdir())
    assert cached and all(p.is_file() and not p.name.endswith(".tmp") for p in cached)
    documented = stored_where_paragraph()
    for name in sorted(AFTER_STOP | WHILE_OPEN):
        assert f"`{name}" in documented, f"{name} is written but the README does not list it"
