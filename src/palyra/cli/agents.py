"""``palyra agents``: list, show, add, update and remove the agents of ``agents.toml`` (state dir).

Edits rewrite the file atomically (``palyra.config.agents_file``); MCP servers are configured by
editing the file (see the README), and an edit keeps those already there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from palyra.cli.common import ConfigOpt, fail, read_config
from palyra.config.agents import AgentConfig, agents_path, load_agents
from palyra.config.agents_file import AgentsEditError, write_agents
from palyra.config.problems import ConfigError
from palyra.config.schema import PalyraConfig
from palyra.paths import state_dir

app = typer.Typer(
    help="Agents (agents.toml): list, show, add, update, remove.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="A model id or alias of palyra.toml.")
]
NameOpt = Annotated[str | None, typer.Option("--display-name", help="A name for people.")]
PromptOpt = Annotated[str | None, typer.Option("--system-prompt", help="The system prompt.")]
ProfileOpt = Annotated[
    str | None, typer.Option("--auth-profile", help="The auth profile its runs use.")
]
ToolOpt = Annotated[
    list[str] | None,
    typer.Option("--tool", help="Allow a tool (repeat; server.tool or server.* for MCP)."),
]
ApprovalOpt = Annotated[
    list[str] | None, typer.Option("--approval", help="A tool that needs approval (repeat).")
]
TurnsOpt = Annotated[int | None, typer.Option("--max-turns", help="Model turns per run.")]
TimeOpt = Annotated[float | None, typer.Option("--time-budget-s", help="Seconds per run.")]
TokensOpt = Annotated[int | None, typer.Option("--token-budget", help="Tokens per run.")]


def _load(config: Path | None) -> tuple[Path, PalyraConfig, list[AgentConfig]]:
    cfg = read_config(config, "agents")
    path = agents_path(state_dir())
    try:
        return path, cfg, load_agents(path, cfg)
    except ConfigError as exc:
        fail(f"{path} has problems; fix them first (nothing was changed):\n{exc}")


def _save(path: Path, cfg: PalyraConfig, agents: list[AgentConfig]) -> None:
    try:
        write_agents(path, agents, cfg)
    except (AgentsEditError, ConfigError) as exc:
        fail(f"{exc}; {path} was not changed")


def _public(agent: AgentConfig) -> dict[str, Any]:
    return agent.model_dump(mode="json")


def _find(agents: list[AgentConfig], agent_id: str) -> AgentConfig:
    for agent in agents:
        if agent.id == agent_id:
            return agent
    known = ", ".join(a.id for a in agents) or "none"
    fail(f'no agent "{agent_id}" (known: {known}); see: palyra agents list')


def _fields(**given: Any) -> dict[str, Any]:
    names = {
        "display_name": "display_name",
        "system_prompt": "system_prompt",
        "auth_profile": "auth_profile_id",
        "tool": "tools",
        "approval": "approval_required",
        "max_turns": "max_turns",
        "time_budget_s": "time_budget_s",
        "token_budget": "token_budget",
        "model": "model",
    }
    return {names[k]: v for k, v in given.items() if v is not None}


def _validated(data: dict[str, Any]) -> AgentConfig:
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'agent'}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid agent: {problems}")


@app.command("list")
def list_agents(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every agent: id, model, tools."""
    path, _, agents = _load(config)
    if as_json:
        typer.echo(json.dumps([_public(a) for a in agents], indent=2))
    elif not agents:
        typer.echo(f"no agents in {path}; add one with: palyra agents add ID --model MODEL")
    for agent in [] if as_json else agents:
        tools = ", ".join(agent.tools) or "no tools"
        typer.echo(f"{agent.id}  model {agent.model}  {tools}  ({agent.label})")


@app.command()
def show(agent_id: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """One agent, every setting."""
    _, _, agents = _load(config)
    data = _public(_find(agents, agent_id))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        typer.echo(f"{key}: {json.dumps(value) if not isinstance(value, str) else value}")


@app.command()
def add(
    agent_id: str,
    model: ModelOpt = None,
    display_name: NameOpt = None,
    system_prompt: PromptOpt = None,
    auth_profile: ProfileOpt = None,
    tool: ToolOpt = None,
    approval: ApprovalOpt = None,
    max_turns: TurnsOpt = None,
    time_budget_s: TimeOpt = None,
    token_budget: TokensOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add an agent (--model is required)."""
    path, cfg, agents = _load(config)
    if any(a.id == agent_id for a in agents):
        fail(f'agent "{agent_id}" already exists; change it with: palyra agents update {agent_id}')
    if model is None:
        fail("give the agent a model: --model ID (a model id or alias of palyra.toml)")
    fields = _fields(
        model=model,
        display_name=display_name,
        system_prompt=system_prompt,
        auth_profile=auth_profile,
        tool=tool,
        approval=approval,
        max_turns=max_turns,
        time_budget_s=time_budget_s,
        token_budget=token_budget,
    )
    agent = _validated({"id": agent_id, **fields})
    _save(path, cfg, [*agents, agent])
    typer.echo(f"added agent {agent_id} to {path}")


@app.command()
def update(
    agent_id: str,
    model: ModelOpt = None,
    display_name: NameOpt = None,
    system_prompt: PromptOpt = None,
    auth_profile: ProfileOpt = None,
    tool: ToolOpt = None,
    approval: ApprovalOpt = None,
    max_turns: TurnsOpt = None,
    time_budget_s: TimeOpt = None,
    token_budget: TokensOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Change the given settings of an agent; the others (and its MCP servers) stay."""
    path, cfg, agents = _load(config)
    current = _find(agents, agent_id)
    fields = _fields(
        model=model,
        display_name=display_name,
        system_prompt=system_prompt,
        auth_profile=auth_profile,
        tool=tool,
        approval=approval,
        max_turns=max_turns,
        time_budget_s=time_budget_s,
        token_budget=token_budget,
    )
    if not fields:
        fail("nothing to change; give at least one option (see: palyra agents update --help)")
    agent = _validated({**current.model_dump(), **fields})
    _save(path, cfg, [agent if a.id == agent_id else a for a in agents])
    typer.echo(f"updated agent {agent_id} in {path}")


@app.command()
def remove(agent_id: str, config: ConfigOpt = None) -> None:
    """Remove an agent; the others stay as they are."""
    path, cfg, agents = _load(config)
    _find(agents, agent_id)
    _save(path, cfg, [a for a in agents if a.id != agent_id])
    typer.echo(f"removed agent {agent_id} from {path}")


__all__ = ["app"]
