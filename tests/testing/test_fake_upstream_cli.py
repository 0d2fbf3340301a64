"""``palyra fake-upstream`` as a real process: it prints its URL, honours every flag, injects
every fault the Python API can, and stops on SIGINT or SIGTERM even when SIGINT was ignored."""

from __future__ import annotations

import dataclasses
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson
import pytest
import typer
from typer.testing import CliRunner

from palyra.cli.main import app
from palyra.testing import FakeSettings, FaultKind
from palyra.testing.fault_spec import PARAMS

CLI = "from palyra.cli.main import main; main()"
# Ignores SIGINT, then execs the CLI: the child inherits SIG_IGN exactly as under `make test &`.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    f"os.execv(sys.executable, [sys.executable, '-c', {CLI!r}, *sys.argv[1:]])"
)
START_TIMEOUT_S = 20.0


@dataclass
class Fake:
    process: subprocess.Popen[bytes]
    url: str
    head: str

    def chat(self, model: str, *, timeout: float = 10.0, **extra: Any) -> httpx2.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}
        return httpx2.post(
            f"{self.url}/v1/chat/completions", json=body, headers=AUTH, timeout=timeout
        )

    def stream(self, model: str) -> Iterator[bytes]:
        """The raw SSE bytes of a streamed chat answer, as they arrive."""
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
        with httpx2.stream(
            "POST", f"{self.url}/v1/chat/completions", json=body, headers=AUTH, timeout=10
        ) as response:
            assert response.status_code == 200
            yield from response.iter_bytes()


AUTH = {"authorization": "Bearer any-key"}


def _flat(output: str) -> str:
    """Rendered help as one line: rich's box borders and line wrapping removed."""
    return " ".join(output.replace("│", " ").split())


def _read_head(process: subprocess.Popen[bytes]) -> str:
    """stdout up to the Anthropic line (printed last, once the fake listens), with a deadline."""
    assert process.stdout is not None
    fd, data = process.stdout.fileno(), b""
    deadline = time.monotonic() + START_TIMEOUT_S
    while b"Anthropic:" not in data or not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0 and process.poll() is None, f"no start-up line: {data!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"stdout closed: {data!r}"
            data += chunk
    return data.decode()


@contextmanager
def fake_process(*args: str, ignore_sigint: bool = False) -> Iterator[Fake]:
    """The CLI in a child process; killed whatever happens in the test."""
    code = IGNORING_SIGINT if ignore_sigint else CLI
    process = subprocess.Popen(
        [sys.executable, "-c", code, "fake-upstream", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        head = _read_head(process)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", head)
        assert match, head
        yield Fake(process, match.group(1), head)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def _stop(fake: Fake, sig: signal.Signals) -> tuple[int, str, str]:
    fake.process.send_signal(sig)
    out, err = fake.process.communicate(timeout=10)
    return fake.process.returncode, fake.head + out.decode(), err.decode()


def test_cli_serves_until_interrupted_and_checks_keys() -> None:
    with fake_process("--api-key", "sk-one", "--stream-chunk-tokens", "3") as fake:
        ok = httpx2.get(fake.url + "/v1/models", headers={"authorization": "Bearer sk-one"})
        assert ok.status_code == 200
        wrong = httpx2.get(fake.url + "/v1/models", headers={"authorization": "Bearer sk-two"})
        assert wrong.status_code == 401
        code, out, err = _stop(fake, signal.SIGINT)
    assert code == 0, err
    assert "fake upstream stopped (SIGINT)" in out
    assert "sk-one" not in out + err


@pytest.mark.parametrize("ignore_sigint", [True, False], ids=["SIGINT-ignored", "default"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_it_cleanly_even_when_sigint_was_inherited_ignored(
    sig: signal.Signals, ignore_sigint: bool
) -> None:
    with fake_process(ignore_sigint=ignore_sigint) as fake:
        assert httpx2.get(fake.url + "/v1/models", headers=AUTH).status_code == 200
        code, out, err = _stop(fake, sig)
    assert code == 0, err
    assert f"fake upstream stopped ({sig.name})" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-rate", "3"], "fail_rate must be between 0 and 1"),
        (["--embedding-dimensions", "0"], "default_embedding_dimensions must be >= 1, got 0"),
        (["--openai-model", ""], "must not contain an empty name"),
    ],
)
def test_cli_refuses_bad_settings_with_the_setting_named(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["fake-upstream", *args], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert message in _flat(result.output), result.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("stream-chopped", "unknown fault 'stream-chopped'; use one of: server_error"),
        ("hang:after_chunks=2", "hang takes no 'after_chunks'; it takes: model, path, times"),
        ("stream_cut:after_chunks=two", "after_chunks must be a whole number, got 'two'"),
        ("server_error:status=404", "needs a 5xx status, got 404"),
        ("rate_limit:retry_after_s=nan", "retry_after_s must be a number, got 'nan'"),
        ("invalid_key:times=0", "times must be 1..10000, got 0"),
        ("hang:model", "'model' is not key=value"),
    ],
)
def test_a_bad_fault_spec_is_a_usage_error_naming_the_fix(spec: str, message: str) -> None:
    result = CliRunner().invoke(app, ["fake-upstream", "--fault", spec], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert message in _flat(result.output), result.output


def _command() -> Any:
    group: Any = typer.main.get_command(app)  # typer's own click: not a click.Group subclass
    # Sub-commands load lazily (palyra.cli.app.LazyGroup): ask the group, not its dict.
    return group.get_command(typer.Context(group), "fake-upstream")


FLAG_OF_SETTING = {
    "default_embedding_dimensions": "--embedding-dimensions",
    "openai_models": "--openai-model",
    "anthropic_models": "--anthropic-model",
    "api_keys": "--api-key",
}


def test_every_setting_and_every_fault_kind_is_a_documented_flag() -> None:
    flags = {opt for param in _command().params for opt in param.opts}
    for field in dataclasses.fields(FakeSettings):
        flag = FLAG_OF_SETTING.get(field.name, "--" + field.name.replace("_", "-"))
        assert flag in flags, f"FakeSettings.{field.name} has no flag {flag}"
    shown = CliRunner().invoke(app, ["fake-upstream", "--help"], env={"COLUMNS": "300"})
    text = _flat(shown.output)
    assert set(PARAMS) == set(FaultKind)
    for kind, keys in PARAMS.items():
        assert (f"{kind.value} ({', '.join(keys)})" if keys else kind.value) in text


FAULTS = [
    "server_error:status=503,model=m-503",
    "rate_limit:retry_after_s=7,model=m-429",
    "slow_first_byte:delay_ms=400,model=m-slow",
    "hang:model=m-hang",
    "connection-reset:model=m-reset",
    "stream_cut:after_chunks=2,model=m-cut",
    "malformed_sse:after_chunks=1,model=m-bad-sse",
    "malformed_json:model=m-bad-json",
    "context_length:model=m-ctx",
    "invalid_key:model=m-key",
    "server_error:status=502,model=m-twice,times=2",
    "server_error:status=504,path=/v1/embeddings",
]


@pytest.fixture(scope="module")
def faulty() -> Iterator[Fake]:
    with fake_process(*(arg for spec in FAULTS for arg in ("--fault", spec))) as fake:
        yield fake


def test_fault_flags_are_queued_at_start(faulty: Fake) -> None:
    assert f"{len(FAULTS) + 1} fault(s) queued" in faulty.head


def test_fault_server_error(faulty: Fake) -> None:
    assert faulty.chat("m-503").status_code == 503
    assert faulty.chat("m-503").status_code == 200  # consumed by one request


def test_fault_rate_limit(faulty: Fake) -> None:
    limited = faulty.chat("m-429")
    assert limited.status_code == 429
    assert (limited.headers["retry-after"], limited.headers["retry-after-ms"]) == ("7", "7000")


def test_fault_slow_first_byte(faulty: Fake) -> None:
    started = time.monotonic()
    assert faulty.chat("m-slow").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_fault_hang(faulty: Fake) -> None:
    with pytest.raises(httpx2.ReadTimeout):
        faulty.chat("m-hang", timeout=0.5)


def test_fault_connection_reset(faulty: Fake) -> None:
    with pytest.raises(httpx2.TransportError):
        faulty.chat("m-reset")


def test_fault_stream_cut(faulty: Fake) -> None:
    received = b""
    with pytest.raises(httpx2.RemoteProtocolError):
        for chunk in faulty.stream("m-cut"):
            received += chunk
    assert received.count(b"data: ") == 2 and b"[DONE]" not in received


def test_fault_malformed_sse(faulty: Fake) -> None:
    events = b"".join(faulty.stream("m-bad-sse")).split(b"\n\n")
    payloads = [e.removeprefix(b"data: ") for e in events if e.startswith(b"data: ")]
    assert payloads[-1] == b"[DONE]"
    broken = []
    for payload in payloads[:-1]:
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            broken.append(payload)
    assert len(broken) == 1 and payloads.index(broken[0]) == 1


def test_fault_malformed_json(faulty: Fake) -> None:
    answer = faulty.chat("m-bad-json")
    assert answer.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer.content)


def test_fault_context_length(faulty: Fake) -> None:
    refused = faulty.chat("m-ctx")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "context_length_exceeded"


def test_fault_invalid_key(faulty: Fake) -> None:
    assert faulty.chat("m-key").status_code == 401


def test_fault_times_queues_copies(faulty: Fake) -> None:
    assert [faulty.chat("m-twice").status_code for _ in range(3)] == [502, 502, 200]


def test_fault_path_filter(faulty: Fake) -> None:
    assert faulty.chat("m-anything").status_code == 200  # a chat request does not consume it
    url = f"{faulty.url}/v1/embeddings"
    embed = {"model": "text-embedding-3-small", "input": "x"}
    assert httpx2.post(url, json=embed, headers=AUTH).status_code == 504
    assert httpx2.post(url, json=embed, headers=AUTH).status_code == 200


def test_setting_flags_reach_the_running_fake() -> None:
    args = [
        "--stream-chunk-delay-ms", "120", "--context-window", "40", "--cached-tokens", "1",
        "--embedding-dimensions", "8", "--openai-model", "my-gpt", "--openai-model", "my-embed",
        "--anthropic-model", "my-claude", "--latency-ms", "150",
    ]  # fmt: skip
    with fake_process(*args) as fake:
        started = time.monotonic()
        answer = fake.chat("my-gpt")
        assert time.monotonic() - started >= 0.15  # --latency-ms
        assert answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 1
        long = fake.chat("my-gpt", messages=[{"role": "user", "content": "word " * 100}])
        assert long.json()["error"]["code"] == "context_length_exceeded"
        stamps = []
        for _ in fake.stream("my-gpt"):
            stamps.append(time.monotonic())
        assert len(stamps) >= 4 and stamps[-1] - stamps[0] >= 0.12 * 2  # --stream-chunk-delay-ms
        embed = {"model": "my-embed", "input": "x"}
        vectors = httpx2.post(f"{fake.url}/v1/embeddings", json=embed, headers=AUTH).json()
        assert len(vectors["data"][0]["embedding"]) == 8
        listed = httpx2.get(f"{fake.url}/v1/models", headers=AUTH).json()
        assert [m["id"] for m in listed["data"]] == ["my-gpt", "my-embed"]
        anthropic = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        claude = httpx2.get(f"{fake.url}/v1/models", headers=anthropic).json()
        assert [m["id"] for m in claude["data"]] == ["my-claude"]


@pytest.mark.parametrize(
    ("args", "statuses"),
    [
        (["--fail-rate", "1", "--fail-status", "529"], [529, 529]),
        (["--rate-limit-rpm", "1"], [200, 429]),
    ],
    ids=["fail-rate+fail-status", "rate-limit-rpm"],
)
def test_failure_flags_reach_the_running_fake(args: list[str], statuses: list[int]) -> None:
    with fake_process(*args) as fake:
        assert [fake.chat("gpt-4o-mini").status_code for _ in statuses] == statuses
