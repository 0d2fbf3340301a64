"""``agents.toml``: the agents the daemon can run, each bound to a model from ``palyra.toml``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from palyra.config.loader import parse_toml_file, place_findings
from palyra.config.problems import ConfigError, Finding
from palyra.config.references import model_names
from palyra.config.schema import PalyraConfig
from palyra.config.schema_check import check_schema

AGENT_ID_PATTERN = r"^[a-z0-9._-]{1,128}$"
AGENTS_FILE_NAME = "agents.toml"


class AgentConfig(BaseModel):
    """One agent: which model it talks to, with what system prompt, and which tools it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=AGENT_ID_PATTERN)
    display_name: str | None = None
    model: str  # a model id or alias from palyra.toml
    system_prompt: str = ""
    auth_profile_id: str | None = None
    tools: list[str] = Field(default_factory=list)  # allowlist; empty means no tools

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
    known = ", ".join(m.id for m in config.model_provider.models) or "none"
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
