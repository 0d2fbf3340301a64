"""``/console/v1/agents`` over HTTP: admin only, list/get/create/update/delete, errors as 400/404/409
naming the agent, and every write leaves a valid agents.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from palyra.config import default_config, load_agents
from palyra.daemon import AppState

StartDaemon = Any
A = "/console/v1/agents"


def message(response: httpx2.Response) -> str:
    text: str = response.json()["error"]["message"]
    return text


async def test_console_agents_crud(
    start_daemon: StartDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
    daemon = start_daemon(AppState.from_config(default_config()))
    file = tmp_path / "agents.toml"
    async with httpx2.AsyncClient(base_url=daemon.url, headers=daemon.admin_headers) as http:
        assert (await http.get(A)).json() == {"agents": []}
        assert (await http.get(A, headers=daemon.headers)).status_code == 401
        made = await http.post(A, json={"id": "ops", "model": "default", "tools": ["calculate"]})
        assert made.status_code == 201, made.text
        assert made.json()["max_turns"] == 8
        other = await http.post(A, json={"id": "writer", "model": "default"})
        assert other.status_code == 201
        again = await http.post(A, json={"id": "ops", "model": "default"})
        assert again.status_code == 409 and 'agent "ops" already exists' in message(again)
        bad_model = await http.post(A, json={"id": "x", "model": "gpt-9"})
        assert bad_model.status_code == 400 and 'uses model "gpt-9"' in message(bad_model)
        bad_field = await http.post(A, json={"id": "y", "model": "default", "max_turns": 0})
        assert bad_field.status_code == 400 and "max_turns" in message(bad_field)
        updated = await http.put(f"{A}/ops", json={"max_turns": 3, "token_budget": 500})
        assert updated.status_code == 200, updated.text
        assert (updated.json()["max_turns"], updated.json()["tools"]) == (3, ["calculate"])
        assert (await http.get(f"{A}/ops")).json()["token_budget"] == 500
        missing = await http.get(f"{A}/ghost")
        assert missing.status_code == 404 and 'no agent "ghost"' in message(missing)
        assert (await http.delete(f"{A}/writer")).status_code == 200
        listed = (await http.get(A)).json()["agents"]
    assert [a["id"] for a in listed] == ["ops"]
    [ops] = load_agents(file, default_config())
    assert (ops.id, ops.max_turns, ops.token_budget) == ("ops", 3, 500)
