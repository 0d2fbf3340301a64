"""``agents.toml``: the agents the daemon can run, each bound to a model from ``palyra.toml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palyra.config.loader import parse_toml_file, place_findings
from palyra.config.problems import ConfigError, Finding
from palyra.config.references import model_names
from palyra.config.schema import PalyraConfig
from palyra.config.schema_check import check_schema
from palyra.model.context import TaskClass, task_class_problem

AGENT_ID_PATTERN = r"^[a-z0-9._-]{1,128}$"
AGENTS_FILE_NAME = "agents.toml"


MCP_SERVER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
SECRET_REF_PATTERN = r"^(env|vault|file):.+$"


class McpServerConfig(BaseModel):
    """An MCP server an agent's run starts (stdio) or connects to (streamable HTTP).

    ``env`` and ``headers`` values are secret references (``env:``, ``vault:``, ``file:``),
    resolved when a run starts, so no secret is written into ``agents.toml``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=MCP_SERVER_NAME_PATTERN)
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, Annotated[str, Field(pattern=SECRET_REF_PATTERN)]] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, Annotated[str, Field(pattern=SECRET_REF_PATTERN)]] = Field(
        default_factory=dict
    )
    timeout_s: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerConfig:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError('a stdio MCP server needs command = "..." (the program to run)')
            if self.url or self.headers:
                raise ValueError('url and headers belong to transport = "http", not stdio')
        else:
            if not self.url:
                raise ValueError('an http MCP server needs url = "http(s)://..."')
            if self.command or self.args or self.env or self.cwd:
                raise ValueError('command, args, env and cwd belong to transport = "stdio"')
        return self


class AgentConfig(BaseModel):
    """One agent: which model it talks to, with what system prompt, which tools it may use and
    how far one run may go (turns, wall time, tokens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=AGENT_ID_PATTERN)
    display_name: str | None = None
    model: str  # a model id or alias from palyra.toml
    system_prompt: str = ""
    auth_profile_id: str | None = None
    tools: list[str] = Field(default_factory=list)  # allowlist; empty means no tools
    approval_required: list[str] = Field(default_factory=list)  # tools a person must approve
    max_turns: int = Field(default=8, ge=1, le=1000)
    time_budget_s: float = Field(default=300.0, gt=0, le=86400)
    token_budget: int | None = Field(default=None, ge=1)  # input + output tokens of one run
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    # The task class of this agent's requests, for ``task`` routing groups (see palyra.toml).
    task: str | None = None

    @field_validator("task")
    @classmethod
    def _task(cls, name: str | None) -> str | None:
        problem = None if name is None else task_class_problem(name)
        if problem is not None:
            raise ValueError(problem)
        return name

    @property
    def task_class(self) -> TaskClass | None:
        return cast("TaskClass | None", self.task)  # checked by _task

    @property
    def label(self) -> str:
        return self.display_name or self.id


class AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    agents: list[AgentConfig] = Field(default_factory=list)


def agents_path(state_dir: Path) -> Path:
    return state_dir / AGENTS_FILE_NAME


def _check_agents(document: dict[str, object], config: PalyraConfig) -> list[Finding]:
    """Duplicate ids and models that ``palyra.toml`` does not define."""
    raw = document.get("agents")
    if not isinstance(raw, list):
        return []
    names = model_names({"model_provider": config.model_provider.model_dump()})
    names.update({g.id: g.id for g in config.model_provider.routing_groups})
    known = (
        ", ".join(
            [m.id for m in config.model_provider.models]
            + [g.id for g in config.model_provider.routing_groups]
        )
        or "none"
    )
    findings: list[Finding] = []
    first: dict[str, int] = {}
    for i, table in enumerate(raw):
        if not isinstance(table, dict):
            continue
        agent_id = table.get("id")
        if isinstance(agent_id, str):
            if agent_id in first:
                findings.append(
                    Finding(
                        ("agents", i, "id"),
                        f'agent id "{agent_id}" is already used by agents[{first[agent_id]}]; '
                        "give each agent its own id",
                    )
                )
            else:
                first[agent_id] = i
        servers = table.get("mcp_servers")
        seen: set[str] = set()
        for j, server in enumerate(servers if isinstance(servers, list) else []):
            name = server.get("name") if isinstance(server, dict) else None
            if isinstance(name, str) and name in seen:
                findings.append(
                    Finding(
                        ("agents", i, "mcp_servers", j, "name"),
                        f'MCP server name "{name}" is used twice in agent "{agent_id}"; '
                        "give each server its own name",
                    )
                )
            elif isinstance(name, str):
                seen.add(name)
        model = table.get("model")
        if isinstance(model, str) and model not in names:
            findings.append(
                Finding(
                    ("agents", i, "model"),
                    f'agent "{agent_id}" uses model "{model}", which palyra.toml does not define '
                    f"(known: {known})",
                )
            )
    return findings


def load_agents(path: Path, config: PalyraConfig, *, must_exist: bool = False) -> list[AgentConfig]:
    """The agents in ``path``; none when the file is absent unless the user named it.

    Raises ``ConfigError`` listing every problem (file, line, key) at once.
    """
    if not must_exist and not path.exists():
        return []
    parsed = parse_toml_file(path, missing_hint="fix the path given to --agents")
    agents_file, findings = check_schema(AgentsFile, parsed.document)
    findings += _check_agents(parsed.document, config)
    if findings or agents_file is None:
        problems = place_findings(findings, parsed, [], parsed.label)
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigError(problems)
    return list(agents_file.agents)
