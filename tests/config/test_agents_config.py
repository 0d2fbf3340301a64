"""``agents.toml``: valid agents load; bad ids, unknown keys, duplicates and missing models are
reported together with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from palyra.config import AgentConfig, ConfigError, default_config, load_agents


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(text: str) -> Path:
    path = Path("agents.toml")
    path.write_text(text)
    return path


def test_agents_load_with_their_model_prompt_and_tool_allowlist() -> None:
    path = write(
        'version = 1\n\n[[agents]]\nid = "ops.bot"\ndisplay_name = "Ops"\nmodel = "default"\n'
        'system_prompt = "You keep the lights on."\nauth_profile_id = "openai-ops"\n'
        'tools = ["shell", "http"]\n\n[[agents]]\nid = "embedder"\nmodel = "embed"\n'
    )
    agents = load_agents(path, default_config())
    assert agents == [
        AgentConfig(
            id="ops.bot",
            display_name="Ops",
            model="default",
            system_prompt="You keep the lights on.",
            auth_profile_id="openai-ops",
            tools=["shell", "http"],
        ),
        AgentConfig(id="embedder", model="embed"),
    ]
    assert agents[1].label == "embedder"
    assert agents[1].tools == []


def test_absent_default_file_means_no_agents_but_a_named_one_must_exist() -> None:
    assert load_agents(Path("agents.toml"), default_config()) == []
    with pytest.raises(ConfigError) as caught:
        load_agents(Path("agents.toml"), default_config(), must_exist=True)
    assert str(caught.value) == ("agents.toml: file not found; fix the path given to --agents")


def test_every_agent_problem_is_reported_with_line_and_key() -> None:
    path = write(
        '[[agents]]\nid = "Bad Id"\nmodel = "default"\n\n'
        '[[agents]]\nid = "writer"\nmodel = "gpt-5"\ntools = "shell"\n\n'
        '[[agents]]\nid = "writer"\nmodel = "default"\ncolour = "blue"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_agents(path, default_config())
    assert [str(p) for p in caught.value.problems] == [
        "agents.toml:2: agents[0].id: string should match pattern '^[a-z0-9._-]{1,128}$'; "
        "fix the value",
        'agents.toml:7: agents[1].model: agent "writer" uses model "gpt-5", which palyra.toml '
        "does not define (known: default, embed, whisper)",
        "agents.toml:8: agents[1].tools: input should be a valid list; fix the value",
        'agents.toml:11: agents[2].id: agent id "writer" is already used by agents[1]; give '
        "each agent its own id",
        'agents.toml:13: agents[2].colour: unknown key "colour" (known: approval_required, '
        "auth_profile_id, display_name, id, max_turns, mcp_servers, model, system_prompt, "
        "task, time_budget_s, token_budget, tools); rename or remove it",
    ]


def test_agent_may_name_a_model_by_alias() -> None:
    config = default_config()
    models = [m.model_copy(update={"aliases": ["main"]}) for m in config.model_provider.models[:1]]
    config = config.model_copy(
        update={"model_provider": config.model_provider.model_copy(update={"models": models})}
    )
    path = write('[[agents]]\nid = "a"\nmodel = "main"\n')
    assert [a.model for a in load_agents(path, config)] == ["main"]


def test_agents_toml_syntax_error_is_located() -> None:
    path = write('[[agents]\nid = "a"\n')
    with pytest.raises(ConfigError) as caught:
        load_agents(path, default_config())
    assert str(caught.value).startswith("agents.toml:1: TOML syntax error at column")


def test_run_limits_mcp_servers_and_approvals_load_and_are_checked_with_lines() -> None:
    path = write(
        '[[agents]]\nid = "ops"\nmodel = "default"\nmax_turns = 3\ntime_budget_s = 20\n'
        'token_budget = 5000\ntools = ["files.*"]\napproval_required = ["files.delete"]\n'
        '[[agents.mcp_servers]]\nname = "files"\ntransport = "stdio"\ncommand = "mcp-files"\n'
        'args = ["--root", "/srv"]\nenv = { TOKEN = "vault:mcp/files" }\n'
        '[[agents.mcp_servers]]\nname = "search"\ntransport = "http"\n'
        'url = "https://mcp.example/mcp"\nheaders = { Authorization = "env:SEARCH_AUTH" }\n'
    )
    [ops] = load_agents(path, default_config())
    assert (ops.max_turns, ops.time_budget_s, ops.token_budget) == (3, 20.0, 5000)
    assert ops.approval_required == ["files.delete"]
    assert [(s.name, s.transport) for s in ops.mcp_servers] == [
        ("files", "stdio"),
        ("search", "http"),
    ]
    assert ops.mcp_servers[0].env == {"TOKEN": "vault:mcp/files"}
    bad = write(
        '[[agents]]\nid = "ops"\nmodel = "default"\nmax_turns = 0\n'
        '[[agents.mcp_servers]]\nname = "files"\ntransport = "stdio"\n'
        'env = { TOKEN = "sk-plain-secret" }\n'
        '[[agents.mcp_servers]]\nname = "files"\ntransport = "http"\nurl = "ftp://x"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_agents(bad, default_config())
    text = [str(p) for p in caught.value.problems]
    assert text[0] == (
        "agents.toml:4: agents[0].max_turns: input should be greater than or equal to 1; "
        "fix the value"
    )
    assert any(
        p.startswith("agents.toml:8: agents[0].mcp_servers[0].env.TOKEN: string should match")
        for p in text
    ), text
    assert any("agents[0].mcp_servers[1].name" in p and "used twice" in p for p in text), text
    assert any("agents[0].mcp_servers[1].url" in p for p in text), text
    assert "sk-plain-secret" not in str(caught.value)
