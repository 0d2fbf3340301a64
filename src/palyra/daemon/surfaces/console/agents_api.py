"""``/console/v1/agents``: list, get, create, update and delete the agents of ``agents.toml``.

Writes go through the same atomic rewrite as ``palyra agents`` (``config.agents_file``); a running
daemon's ``AgentRuntime`` reads the file at every run, so a change applies to the next run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from palyra.config.agents import AgentConfig, agents_path, load_agents
from palyra.config.agents_file import AgentsEditError, write_agents
from palyra.config.problems import ConfigError
from palyra.config.schema import PalyraConfig
from palyra.daemon.state import AppState
from palyra.daemon.surfaces.console.console_format import json_response
from palyra.daemon.surfaces.openapi_docs import error_responses
from palyra.model import FailureClass, PalyraError
from palyra.paths import state_dir

PATH = "/console/v1/agents"


def _where(request: Request) -> tuple[Path, PalyraConfig]:
    state: AppState = request.app.state.console.state
    return agents_path(state.state_dir or state_dir()), state.config


def _load(path: Path, config: PalyraConfig) -> list[AgentConfig]:
    try:
        return load_agents(path, config)
    except ConfigError as exc:
        raise PalyraError.of(
            FailureClass.CONFIG, f"{path.name} has problems; fix them first: {exc}"
        ) from None


def _find(agents: list[AgentConfig], agent_id: str) -> AgentConfig:
    for agent in agents:
        if agent.id == agent_id:
            return agent
    raise PalyraError.of(FailureClass.NOT_FOUND, f'there is no agent "{agent_id}"; see GET {PATH}')


async def _save(path: Path, config: PalyraConfig, agents: list[AgentConfig]) -> None:
    try:
        await asyncio.to_thread(write_agents, path, agents, config)
    except (AgentsEditError, ConfigError) as exc:
        raise PalyraError.of(FailureClass.INVALID_REQUEST, str(exc)) from None


def _valid(data: dict[str, Any]) -> AgentConfig:
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise PalyraError.of(FailureClass.INVALID_REQUEST, f"invalid agent: {problems}") from None


async def list_agents(request: Request) -> Response:
    agents = _load(*_where(request))
    return json_response({"agents": [a.model_dump(mode="json") for a in agents]})


async def get_agent(request: Request, agent_id: str) -> Response:
    return json_response(_find(_load(*_where(request)), agent_id).model_dump(mode="json"))


async def create_agent(request: Request, body: dict[str, Any]) -> Response:
    path, config = _where(request)
    agents = _load(path, config)
    agent = _valid(body)
    if any(a.id == agent.id for a in agents):
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f'agent "{agent.id}" already exists; change it with PUT {PATH}/{agent.id}',
            http_status=409,
        )
    await _save(path, config, [*agents, agent])
    return json_response(agent.model_dump(mode="json"), status=201)


async def update_agent(request: Request, agent_id: str, body: dict[str, Any]) -> Response:
    """The given fields change; the others (MCP servers too) stay."""
    path, config = _where(request)
    agents = _load(path, config)
    current = _find(agents, agent_id)
    if "id" in body and body["id"] != agent_id:
        raise PalyraError.of(FailureClass.INVALID_REQUEST, "an agent's id cannot be changed")
    agent = _valid({**current.model_dump(), **body})
    await _save(path, config, [agent if a.id == agent_id else a for a in agents])
    return json_response(agent.model_dump(mode="json"))


async def delete_agent(request: Request, agent_id: str) -> Response:
    path, config = _where(request)
    agents = _load(path, config)
    removed = _find(agents, agent_id)
    await _save(path, config, [a for a in agents if a.id != agent_id])
    return json_response(removed.model_dump(mode="json"))


def mount_agents(app: FastAPI) -> None:
    ids = (400, 401, 404, 500)
    app.add_api_route(PATH, list_agents, methods=["GET"], responses=error_responses((401, 500)))
    app.add_api_route(
        PATH, create_agent, methods=["POST"], responses=error_responses((400, 401, 409, 413))
    )
    for endpoint, method in ((get_agent, "GET"), (update_agent, "PUT"), (delete_agent, "DELETE")):
        app.add_api_route(
            f"{PATH}/{{agent_id}}", endpoint, methods=[method], responses=error_responses(ids)
        )
