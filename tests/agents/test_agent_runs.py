"""Agent runs end to end: the turn loop through the router to the fake upstream on loopback, with a
built-in tool, a real MCP server (stdio and streamable HTTP), budgets, max turns, cancel and
approvals. Tool calls and results are checked in the run events and in the upstream bodies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from agent_support import (
    CRON,
    KEY_ENV,
    SlowTool,
    agent,
    agent_runtime,
    collect,
    http_mcp_server,
    of_type,
    stdio_server,
)

from palyra.agents import RunEvent
from palyra.testing import FakeUpstream


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-agent-test")


def chat_bodies(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.path == "/v1/chat/completions"]


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


async def test_a_built_in_tool_call_and_result_are_in_the_events_and_the_upstream_bodies() -> None:
    with FakeUpstream() as fake:
        async with agent_runtime(
            fake, [agent(tools=["calculate"], system_prompt="Be exact.")]
        ) as rt:
            events = await collect(rt.run("ops", 'call calculate {"expression": "6*7+1"}', CRON))
    types = [e.type for e in events]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert of_type(events, "run_started")[0]["principal"] == "system:daemon"
    [call] = of_type(events, "tool_call")
    assert call["name"] == "calculate" and json.loads(call["arguments"]) == {"expression": "6*7+1"}
    [result] = of_type(events, "tool_result")
    assert result == {
        "turn": 1,
        "id": call["id"],
        "name": "calculate",
        "content": "43",
        "is_error": False,
        "denied": False,
    }
    first, second = chat_bodies(fake)
    assert first["messages"][0] == {"role": "system", "content": "Be exact."}
    assert [t["function"]["name"] for t in first["tools"]] == ["calculate"]
    assistant = second["messages"][-2]
    assert assistant["tool_calls"][0]["id"] == call["id"]
    assert tool_messages(second) == [{"role": "tool", "tool_call_id": call["id"], "content": "43"}]
    final = events[-1].data
    assert final["output"] == "Tool calculate returned: 43"
    turns = of_type(events, "turn_completed")
    assert [t["turn"] for t in turns] == [1, 2]
    total_in = sum(t["usage"]["input_tokens"] for t in turns)
    total_out = sum(t["usage"]["output_tokens"] for t in turns)
    assert final["usage"] == {"input_tokens": total_in, "output_tokens": total_out}
    assert total_in > 0 and total_out > 0
    assert "".join(d["text"] for d in of_type(events, "model_delta")) == final["output"]


async def test_a_tool_from_a_real_stdio_mcp_server_with_a_secret_env_ref() -> None:
    token = "mcp-secret-token-7d1e"
    server = stdio_server(env={"MCP_TEST_TOKEN": "env:MCP_TOKEN_FOR_TEST"})
    agents = [agent(tools=["tools.reverse", "tools.whoami"], mcp_servers=[server])]
    with FakeUpstream() as fake:
        async with agent_runtime(fake, agents, environ={"MCP_TOKEN_FOR_TEST": token}) as rt:
            events = await collect(
                rt.run("ops", 'call tools__reverse call tools__whoami {"text": "stressed"}', CRON)
            )
    assert events[-1].type == "run_completed", events[-1]
    results = {r["name"]: r["content"] for r in of_type(events, "tool_result")}
    digest = hashlib.sha256(token.encode()).hexdigest()[:16]
    assert results == {"tools__reverse": "desserts", "tools__whoami": f"token-sha256:{digest}"}
    first, second = chat_bodies(fake)
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(offered) == {"tools__reverse", "tools__whoami"}  # wipe is not on the allowlist
    assert offered["tools__reverse"]["parameters"]["required"] == ["text"]
    assert sorted(m["content"] for m in tool_messages(second)) == sorted(results.values())
    assert token not in json.dumps([e.data for e in events])


async def test_a_tool_from_a_streamable_http_mcp_server_on_loopback() -> None:
    async with http_mcp_server() as url:
        server = {"name": "remote", "transport": "http", "url": url}
        with FakeUpstream() as fake:
            async with agent_runtime(fake, [agent(tools=["remote.*"], mcp_servers=[server])]) as rt:
                events = await collect(rt.run("ops", 'call remote__reverse {"text": "live"}', CRON))
    assert events[-1].type == "run_completed", events[-1]
    [result] = of_type(events, "tool_result")
    assert result["content"] == "evil"
    first, second = chat_bodies(fake)
    assert {t["function"]["name"] for t in first["tools"]} == {
        "remote__reverse",
        "remote__whoami",
        "remote__wipe",
    }
    assert tool_messages(second)[0]["content"] == "evil"


async def test_a_tool_needing_approval_is_denied_in_an_unattended_run(tmp_path: Path) -> None:
    marker = tmp_path / "wiped"
    server = stdio_server(env={"MCP_WIPE_MARKER": "env:MARKER"})
    agents = [agent(tools=["tools.wipe"], approval_required=["tools.wipe"], mcp_servers=[server])]
    with FakeUpstream() as fake:
        async with agent_runtime(fake, agents, environ={"MARKER": str(marker)}) as rt:
            events = await collect(rt.run("ops", 'call tools__wipe {"target": "prod"}', CRON))
    [result] = of_type(events, "tool_result")
    assert result["denied"] is True and result["is_error"] is True
    assert result["reason"] == (
        'tool "tools.wipe" needs approval and this run is unattended (channel cron, principal '
        "system:daemon); it was not run"
    )
    assert not marker.exists()
    # The OpenAI wire marks an error result in its text: "Error: <reason>".
    assert tool_messages(chat_bodies(fake)[1])[0]["content"] == f"Error: {result['reason']}"
    assert events[-1].type == "run_completed"


async def test_max_turns_ends_a_run_that_keeps_calling_tools() -> None:
    with FakeUpstream() as fake:
        async with agent_runtime(fake, [agent(tools=["calculate"], max_turns=1)]) as rt:
            events = await collect(rt.run("ops", 'call calculate {"expression": "1"}', CRON))
    final = events[-1]
    assert final.type == "run_failed"
    assert final.data["reason"] == "max_turns" and final.data["turns"] == 1
    assert len(chat_bodies(fake)) == 1


async def test_the_token_budget_stops_the_run_after_the_turn_that_overspent() -> None:
    with FakeUpstream() as fake:
        async with agent_runtime(fake, [agent(tools=["calculate"], token_budget=12)]) as rt:
            events = await collect(
                rt.run("ops", 'please call calculate {"expression": "2**10"} now', CRON)
            )
    final = events[-1]
    assert final.type == "run_failed" and final.data["reason"] == "budget_exhausted"
    spent = final.data["usage"]["input_tokens"] + final.data["usage"]["output_tokens"]
    assert (
        spent > 12 and f"used {spent} tokens, over its token_budget of 12" in final.data["message"]
    )
    # Turn 1 spent 7 tokens (within 12) and called the tool; turn 2 went over: no turn 3.
    turns = of_type(events, "turn_completed")
    assert turns[0]["usage"]["input_tokens"] + turns[0]["usage"]["output_tokens"] <= 12
    assert len(turns) == 2 == final.data["turns"] and len(chat_bodies(fake)) == 2


async def test_the_time_budget_stops_a_run_waiting_on_a_tool() -> None:
    with FakeUpstream() as fake:
        async with agent_runtime(fake, [agent(tools=["slow"], time_budget_s=0.5)]) as rt:
            started = time.monotonic()
            events = await collect(rt.run("ops", "call slow", CRON))
            took = time.monotonic() - started
    final = events[-1]
    assert final.type == "run_timed_out"
    assert final.data["error_category"] == "timeout" and final.data["reason"] == "time_budget"
    assert 0.45 <= took < 3
    assert [e.type for e in events[:-1]].count("tool_call") == 1


async def test_the_context_deadline_caps_the_time_budget() -> None:
    ctx = CRON.__class__(CRON.principal, channel="cron", deadline=time.time() + 0.3)
    with FakeUpstream() as fake:
        async with agent_runtime(fake, [agent(tools=["slow"], time_budget_s=60)]) as rt:
            started = time.monotonic()
            events = await collect(rt.run("ops", "call slow", ctx))
    assert events[-1].type == "run_timed_out" and time.monotonic() - started < 3


async def test_cancel_stops_a_running_run_and_says_so() -> None:
    cancel = asyncio.Event()
    with FakeUpstream() as fake:
        async with agent_runtime(fake, [agent(tools=["slow"])]) as rt:
            slow = rt.tools.get("slow")
            assert isinstance(slow, SlowTool)
            seen: list[RunEvent] = []

            async def follow() -> None:
                async for event in rt.run("ops", "call slow", CRON, cancel=cancel):
                    seen.append(event)

            task = asyncio.create_task(follow())
            await asyncio.wait_for(slow.started.wait(), 5)
            cancel.set()
            await asyncio.wait_for(task, 5)
    assert seen[-1].type == "run_cancelled"
    assert seen[-1].data["reason"] == "cancelled" and seen[-1].data["turns"] == 1


async def test_unknown_agent_and_unreachable_mcp_server_fail_the_run_with_the_reason() -> None:
    broken = {"name": "gone", "transport": "stdio", "command": "/nonexistent/mcp-server"}
    with FakeUpstream() as fake:
        async with agent_runtime(fake, [agent(mcp_servers=[broken])]) as rt:
            [unknown] = await collect(rt.run("nobody", "hi", CRON))
            [unreachable] = await collect(rt.run("ops", "hi", CRON))
    assert unknown.type == "run_failed" and unknown.data["reason"] == "unknown_agent"
    assert 'no agent "nobody"' in unknown.data["message"]
    assert unreachable.type == "run_failed"
    assert unreachable.data["reason"] == "tool_server_unavailable"
    assert 'MCP server "gone"' in unreachable.data["message"]
    assert "/nonexistent/mcp-server" in unreachable.data["message"]
    assert not chat_bodies(fake)


async def test_an_upstream_failure_is_a_failed_run_with_its_category() -> None:
    os.environ.pop(KEY_ENV)
    with FakeUpstream() as fake:
        async with agent_runtime(fake, [agent()]) as rt:
            events = await collect(rt.run("ops", "hello", CRON))
    final = events[-1]
    assert final.type == "run_failed" and final.data["reason"] == "model_error"
    assert final.data["error_category"] == "config" and KEY_ENV in final.data["message"]
