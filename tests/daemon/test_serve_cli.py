"""``palyra serve``: bind parsing, config loading, and a real process that stops on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
import typer

from palyra.cli.serve import load_config, parse_bind


def test_parse_bind_accepts_ipv4_and_bracketed_ipv6() -> None:
    assert parse_bind("127.0.0.1:7142") == ("127.0.0.1", 7142)
    assert parse_bind("[::1]:0") == ("::1", 0)


@pytest.mark.parametrize("bind", ["7142", "localhost", ":80", "host:99999", "host:http"])
def test_parse_bind_rejects_what_is_not_host_port(bind: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not HOST:PORT"):
        parse_bind(bind)


def test_no_config_means_builtin_defaults(tmp_path: Path) -> None:
    config = load_config(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert [p.kind for p in config.model_provider.providers] == ["deterministic"]


def test_config_file_and_env_overrides_are_loaded(tmp_path: Path) -> None:
    good = tmp_path / "palyra.toml"
    good.write_text('version = 1\n[daemon]\nbind = "127.0.0.1:9000"\n')
    assert load_config(good, {}).daemon.bind == "127.0.0.1:9000"
    overridden = load_config(good, {"PALYRA_DAEMON__SHUTDOWN_GRACE_S": "3"})
    assert overridden.daemon.shutdown_grace_s == 3


def test_every_config_problem_is_printed_and_serve_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[daemon]\nbnd = 1\nbind = 7\n")
    with pytest.raises(typer.Exit) as info:
        load_config(bad, {})
    assert info.value.exit_code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert all(line.startswith("palyra serve: ") and "bad.toml" in line for line in lines)
    assert any("bnd" in line for line in lines) and any("bind" in line for line in lines)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_answers_then_stops_gracefully_on_signal(sig: signal.Signals, tmp_path: Path) -> None:
    command = "from palyra.cli.main import main; main()"
    env = {**os.environ, "PALYRA_STATE_DIR": str(tmp_path / "state")}
    env.pop("PALYRA_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-c", command, "serve", "--bind", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"palyra serving on (http://127\.0\.0\.1:\d+)/v1", line)
        assert match, line
        # The socket already listens when the line is logged, so the request waits in the backlog.
        response = httpx2.get(f"{match.group(1)}/healthz", timeout=5)
        assert response.json() == {"status": "ok"}
        assert "server" not in response.headers  # the stack is not advertised
        assert response.headers["date"]
        process.send_signal(sig)
        assert process.wait(timeout=15) == 0
        assert "palyra stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
