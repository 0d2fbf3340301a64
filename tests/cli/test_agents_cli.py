"""``palyra agents``: list/show (--json), add/update/remove through an atomic rewrite of agents.toml
that never leaves a broken file or loses other agents, even when the write is cut off."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app
from palyra.config import default_config, load_agents


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    monkeypatch.setenv("PALYRA_STATE_DIR", str(path))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.chdir(tmp_path)
    return path


def agents(*args: str) -> Result:
    return CliRunner().invoke(app, ["agents", *args])


def test_add_list_show_update_remove(state: Path) -> None:
    assert "no agents in" in agents("list").stdout
    made = agents(
        "add",
        "ops",
        "--model",
        "default",
        "--tool",
        "calculate",
        "--tool",
        "files.*",
        "--approval",
        "files.delete",
        "--max-turns",
        "4",
        "--token-budget",
        "9000",
    )
    assert made.exit_code == 0, made.stderr
    assert agents("add", "writer", "--model", "default").exit_code == 0
    listed = json.loads(agents("list", "--json").stdout)
    assert [a["id"] for a in listed] == ["ops", "writer"]
    shown = json.loads(agents("show", "ops", "--json").stdout)
    assert shown["tools"] == ["calculate", "files.*"] and shown["max_turns"] == 4
    assert shown["approval_required"] == ["files.delete"] and shown["token_budget"] == 9000
    assert "model default" in agents("list").stdout
    assert agents("update", "ops", "--time-budget-s", "60").exit_code == 0
    [ops, _writer] = load_agents(state / "agents.toml", default_config())
    assert (ops.time_budget_s, ops.max_turns, ops.tools) == (60.0, 4, ["calculate", "files.*"])
    assert agents("remove", "ops").exit_code == 0
    assert [a.id for a in load_agents(state / "agents.toml", default_config())] == ["writer"]


def test_bad_edits_are_refused_naming_the_fix_and_change_nothing(state: Path) -> None:
    assert agents("add", "ops", "--model", "default").exit_code == 0
    before = (state / "agents.toml").read_text()
    cases = [
        (("add", "ops", "--model", "default"), 'agent "ops" already exists'),
        (("add", "new"), "give the agent a model: --model ID"),
        (("add", "x", "--model", "gpt-9"), 'uses model "gpt-9", which palyra.toml does not'),
        (("add", "Bad Id", "--model", "default"), "invalid agent: id: String should match"),
        (("update", "ghost", "--max-turns", "2"), 'no agent "ghost" (known: ops)'),
        (("update", "ops", "--max-turns", "0"), "max_turns: Input should be greater"),
        (("update", "ops"), "nothing to change"),
        (("remove", "ghost"), 'no agent "ghost"'),
    ]
    for args, message in cases:
        result = agents(*args)
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)
        assert (state / "agents.toml").read_text() == before
    assert sorted(os.listdir(state)) == ["agents.toml"]


def test_a_broken_file_is_not_rewritten(state: Path) -> None:
    (state / "agents.toml").write_text('[[agents]]\nid = "ops"\nmodel = "default"\ncolour = 1\n')
    result = agents("add", "b", "--model", "default")
    assert result.exit_code == 1
    assert "has problems; fix them first (nothing was changed)" in result.stderr
    assert 'agents.toml:4: agents[0].colour: unknown key "colour"' in result.stderr
    assert "colour = 1" in (state / "agents.toml").read_text()


@pytest.mark.parametrize("crash_at", ["write", "fsync", "replace"])
def test_a_crash_mid_write_keeps_every_agent(
    state: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    for agent_id in ("a", "b", "c"):
        assert agents("add", agent_id, "--model", "default").exit_code == 0
    before = (state / "agents.toml").read_text()

    class Crash(BaseException):
        """Stands for the process dying (not an Exception: nothing may catch and go on)."""

    if crash_at == "write":
        real_fdopen = os.fdopen

        def half_written(fd: int, *args: object, **kwargs: object) -> object:
            handle = real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

            def write(text: str) -> int:
                handle.__class__.write(handle, text[: len(text) // 2])
                handle.flush()
                raise Crash

            handle.write = write
            return handle

        monkeypatch.setattr(os, "fdopen", half_written)
    elif crash_at == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(Crash()))
    else:
        monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        CliRunner().invoke(app, ["agents", "remove", "b"], catch_exceptions=False)
    monkeypatch.undo()
    assert (state / "agents.toml").read_text() == before
    ids = [a.id for a in load_agents(state / "agents.toml", default_config())]
    assert ids == ["a", "b", "c"]
    assert sorted(os.listdir(state)) == ["agents.toml"]
