"""``palyra fake-upstream`` runs in the foreground, prints its URL and honours its options."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx2
from typer.testing import CliRunner

from palyra.cli.main import app

RUN = [sys.executable, "-c", "from palyra.cli.main import main; main()", "fake-upstream"]


def test_cli_serves_until_interrupted_and_checks_keys() -> None:
    proc = subprocess.Popen(
        [*RUN, "--port", "0", "--api-key", "sk-one", "--stream-chunk-tokens", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        url = match.group(1)
        ok = httpx2.get(url + "/v1/models", headers={"authorization": "Bearer sk-one"})
        assert ok.status_code == 200
        wrong = httpx2.get(url + "/v1/models", headers={"authorization": "Bearer sk-two"})
        assert wrong.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "fake upstream stopped" in out
    assert "sk-one" not in out + err


def test_cli_refuses_bad_settings_with_the_setting_named() -> None:
    result = CliRunner().invoke(app, ["fake-upstream", "--fail-rate", "3"])
    assert result.exit_code == 2
    assert "fail_rate must be between 0 and 1" in result.output
