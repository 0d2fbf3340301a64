"""``palyra cron`` without a daemon: it writes the store directly, and refuses bad input naming
the option at fault and what exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app

AGENTS = """
version = 1
[[agents]]
id = "ops"
model = "default"
"""


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "agents.toml").write_text(AGENTS)
    return tmp_path


def cron(*args: str) -> Result:
    return CliRunner().invoke(app, ["cron", *args])


ADD = ["add", "nightly", "--agent", "ops", "--schedule", "30 2 * * *", "--prompt", "check"]


def test_add_list_show_and_explain_in_the_jobs_zone() -> None:
    added = cron(*ADD, "--tz", "Europe/Berlin", "--retries", "2", "--backoff", "10,60")
    assert added.exit_code == 0, added.output
    listed = json.loads(cron("list", "--json").output)
    assert [j["name"] for j in listed] == ["nightly"]
    shown = json.loads(cron("show", "nightly", "--json").output)
    assert shown["retry"] == {"attempts": 3, "backoff_s": [10.0, 60.0]}
    assert shown["schedule"] == {
        "kind": "cron",
        "expression": "30 2 * * *",
        "timezone": "Europe/Berlin",
    }
    explained = cron("explain", "nightly", "--count", "3")
    assert explained.exit_code == 0, explained.output
    lines = explained.output.splitlines()
    start = lines.index("next fire times (Europe/Berlin):")
    nxt = [line.strip() for line in lines[start + 1 : start + 4]]
    assert all("T02:30:00+0" in t for t in nxt), nxt
    data = json.loads(cron("explain", "nightly", "--json").output)
    assert data["zone"] == "Europe/Berlin" and len(data["next"]) == 5


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--schedule", "30 25 * * *"], "--schedule (hour field)"),
        (["--schedule", "0 0 30 2 *"], "never fires"),
        (["--agent", "ghost"], "--agent: no agent 'ghost' in agents.toml (agents: ops)"),
        (["--tz", "Europe/Berln"], "did you mean Europe/Berlin"),
        (["--profile", "nobody"], "--profile: no auth profile 'nobody'"),
        (["--misfire", "often"], "--misfire: 'often' is not one of: skip, run_once, run_all"),
        (["--backoff", "10,soon"], "--backoff"),
        (["--jitter", "-1"], "--jitter"),
        (["--webhook", "ftp://x"], "--webhook"),
        (["--webhook", "https://x.test/h", "--webhook-secret", "s3cret-value"], "reference"),
    ],
)
def test_bad_input_is_refused_naming_the_option(extra: list[str], named: str) -> None:
    args = list(ADD)
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    result = cron(*args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output and "s3cret-value" not in result.output
    assert json.loads(cron("list", "--json").output) == []


def test_disable_enable_run_now_logs_and_delete() -> None:
    assert cron(*ADD, "--disabled").exit_code == 0
    assert json.loads(cron("show", "nightly", "--json").output)["enabled"] is False
    explained = cron("explain", "nightly").output
    assert "the job is disabled" in explained
    enabled = cron("enable", "nightly")
    assert enabled.exit_code == 0 and "enabled " in enabled.output
    queued = cron("run-now", "nightly")
    assert queued.exit_code == 0, queued.output
    runs = json.loads(cron("logs", "nightly", "--json").output)
    assert [(r["status"], r["reason"], r["principal"]) for r in runs] == [
        ("queued", "run-now", "local:cli")
    ]
    one = json.loads(cron("logs", "--run", runs[0]["id"], "--json").output)
    assert one["id"] == runs[0]["id"] and one["events"] == []
    updated = cron("update", "nightly", "--schedule", "*/5 * * * *", "--json")
    assert json.loads(updated.output)["schedule"]["expression"] == "*/5 * * * *"
    deleted = cron("delete", "nightly")
    assert deleted.exit_code == 0
    # Its open run was cancelled with it; the history stays.
    after = json.loads(cron("logs", "--json").output)
    assert [(r["status"], r["reason"]) for r in after] == [("cancelled", "job deleted")]
    missing = cron("show", "nightly")
    assert missing.exit_code == 1 and "no cron job 'nightly'" in missing.output
