"""An agent's runs on a ``task`` routing group: its ``task`` in agents.toml, else the run's kind
(a cron run is background work, a person's run interactive), picks the member that answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from agent_support import CRON, KEY_ENV, agent, collect, config_for

from palyra.agents import AgentRuntime, RequestContext, default_registry
from palyra.config.agents import AgentConfig
from palyra.config.schema import ModelConfig, RoutingGroupConfig
from palyra.model.context import Principal
from palyra.routing.assembly import build_runtime
from palyra.testing import FakeUpstream

PERSON = RequestContext(Principal("admin_token", "me"), run_id="run-2", channel="console")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-agent-test")


@asynccontextmanager
async def grouped(fake: FakeUpstream, agents: list[AgentConfig]) -> AsyncIterator[AgentRuntime]:
    base = config_for(fake)
    mp = base.model_provider
    models = [
        mp.models[0].model_copy(update={"model": "gpt-4.1", "cost_tier": "premium"}),
        ModelConfig(id="mini", provider="up", model="gpt-4o-mini", cost_tier="low"),
    ]
    group = RoutingGroupConfig(id="smart", strategy="task", members=["main", "mini"])
    config = base.model_copy(
        update={
            "model_provider": mp.model_copy(update={"models": models, "routing_groups": [group]})
        }
    )
    async with build_runtime(config) as runtime:
        yield AgentRuntime(runtime.router, agents, tools=default_registry())


def answered_by(fake: FakeUpstream) -> str:
    return str(fake.requests[-1].body["model"])


async def test_an_agents_task_class_routes_its_runs() -> None:
    agents = [agent(id="digest", model="smart", task="summary"), agent(id="ops", model="smart")]
    with FakeUpstream() as fake:
        async with grouped(fake, agents) as runtime:
            events = await collect(runtime.run("digest", "sum up the day", PERSON))
            assert events[-1].type == "run_completed"
            assert answered_by(fake) == "gpt-4o-mini"  # summary: the cheap tier
            await collect(runtime.run("ops", "look at this", PERSON))
            assert answered_by(fake) == "gpt-4.1"  # no task, a person waiting: interactive
            await collect(runtime.run("ops", "nightly check", CRON))
            assert answered_by(fake) == "gpt-4o-mini"  # a cron run is background work
