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
        'agents.toml:13: agents[2].colour: unknown key "colour" (known: auth_profile_id, '
        "display_name, id, model, system_prompt, tools); rename or remove it",
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
