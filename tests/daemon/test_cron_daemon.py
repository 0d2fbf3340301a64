"""Scheduled runs end to end: a real daemon runs its scheduler, the real AgentRuntime calls the
fake upstream on loopback through the router, and the console API manages jobs and runs."""

from __future__ import annotations

import asyncio
import base64
import calendar
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest

from palyra.auth import ApiKeyRefs, AuthProfileRecord, AuthProfileRegistry, secret_ref
from palyra.auth.records import agent_scope
from palyra.config.schema import (
    CronConfig,
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
    StorageConfig,
)
from palyra.cron.webhook import deliver, verify
from palyra.daemon import AppState
from palyra.store import open_store
from palyra.testing import FakeUpstream
from palyra.vault import KeyResolver, Vault

RunningDaemon = Any
StartDaemon = Any
C = "/console/v1"
MCP_SERVER = Path(__file__).resolve().parents[1] / "agents" / "mcp_server.py"
HOOK_SECRET = "whsec-3b9f0c7e1a5d"
HOOK_REF = "vault:global/cron-hook"
AGENTS = """
version = 1
[[agents]]
id = "ops"
model = "main"
system_prompt = "You check things."

[[agents]]
id = "texter"
model = "main"
tools = ["text.*"]
[[agents.mcp_servers]]
name = "text"
transport = "stdio"
command = "{python}"
args = ["{server}"]
"""


async def add_profile(registry: AuthProfileRegistry, pid: str, scope: str = "global") -> None:
    now = registry.now()
    await registry.create(
        AuthProfileRecord(
            profile_id=pid,
            provider="openai",
            display_name=pid,
            scope=scope,
            credential=ApiKeyRefs(api_key_ref=str(secret_ref(pid, "api_key"))),
            created_at=now,
            updated_at=now,
        )
    )
    await registry.vault.put(secret_ref(pid, "api_key"), f"key-of-{pid}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_keys=frozenset({"key-of-cronkey", "key-of-other"})) as up:
        yield up


MakeDaemon = Callable[..., Awaitable[RunningDaemon]]


@pytest.fixture
def make_daemon(
    start_daemon: StartDaemon, fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MakeDaemon:
    async def make(cron: CronConfig | None = None) -> RunningDaemon:
        key = base64.b64encode(os.urandom(32)).decode()
        monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path))
        monkeypatch.setenv("PALYRA_VAULT_KEY", key)
        url = f"sqlite+aiosqlite:///{tmp_path}/palyra.db"
        store = await open_store(url)
        try:
            keys = KeyResolver(tmp_path, environ={"PALYRA_VAULT_KEY": key})
            registry = AuthProfileRegistry(store, await Vault.open(store, keys))
            await add_profile(registry, "cronkey")
            await add_profile(registry, "other")
            await add_profile(registry, "mine", scope=agent_scope("someone-else"))
            await registry.vault.put(HOOK_REF, HOOK_SECRET)
        finally:
            await store.aclose()
        mcp = MCP_SERVER
        (tmp_path / "agents.toml").write_text(
            AGENTS.replace("{python}", sys.executable).replace("{server}", str(mcp))
        )
        config = PalyraConfig(
            storage=StorageConfig(url=url),
            cron=cron or CronConfig(),
            model_provider=ModelProviderRegistryConfig(
                default_chat_model="main",
                providers=[
                    ProviderConfig(
                        id="up",
                        kind="openai",
                        base_url=fake.openai_base_url,
                        auth_profile_ids=["other"],
                    )
                ],
                models=[
                    ModelConfig(
                        id="main",
                        provider="up",
                        model="gpt-4o-mini",
                        capabilities=["chat", "tools"],
                    )
                ],
            ),
        )
        state = AppState.from_config(config)
        state.state_dir = tmp_path
        state.run_scheduler = True
        return start_daemon(state)

    return make


@pytest.fixture
async def daemon(make_daemon: MakeDaemon) -> RunningDaemon:
    return await make_daemon()


@pytest.fixture
async def http(daemon: RunningDaemon) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        base_url=daemon.url, headers=daemon.admin_headers, timeout=10
    ) as client:
        yield client


async def wait_for(check: Any) -> Any:
    deadline = time.monotonic() + 15.0
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.1)


async def test_a_job_every_second_runs_as_the_daemon_with_the_jobs_profile(
    http: httpx2.AsyncClient, fake: FakeUpstream
) -> None:
    created = await http.post(
        f"{C}/cron/jobs",
        json={
            "name": "tick",
            "agent": "ops",
            "schedule": "* * * * * *",
            "tz": "Europe/Berlin",
            "prompt": "say ok",
            "profile": "cronkey",
        },
    )
    assert created.status_code == 201, created.text
    job = created.json()
    await asyncio.sleep(4.2)
    disabled = await http.post(f"{C}/cron/jobs/tick/disable")
    assert disabled.json()["enabled"] is False

    async def settled() -> list[dict[str, Any]] | None:
        runs = (await http.get(f"{C}/runs", params={"job": "tick", "limit": 100})).json()["data"]
        return runs if runs and all(r["finished_at"] for r in runs) else None

    runs = await wait_for(settled)
    times = sorted(r["scheduled_for"] for r in runs)
    assert len(times) == len(set(times)), "a second ran twice"
    succeeded = [r for r in runs if r["status"] == "succeeded"]
    assert len(succeeded) >= 3, runs
    assert {r["status"] for r in runs} <= {"succeeded", "skipped"}
    for run in succeeded:
        assert run["job_id"] == job["id"]
        assert run["agent_id"] == "ops"
        assert run["auth_profile_id"] == "cronkey"
        assert run["principal"] == "system:daemon"
        assert run["input_tokens"] > 0 and run["output_tokens"] > 0
        assert run["duration_ms"] is not None
        detail = (await http.get(f"{C}/runs/{run['id']}")).json()
        types = [e["type"] for e in detail["events"]]
        assert types[0] == "run_started" and types[-1] == "run_completed", types
        assert detail["events"][0]["principal"] == "system:daemon"
    chats = [r for r in fake.requests if r.path == "/v1/chat/completions"]
    assert len(chats) == len(succeeded)
    assert {r.headers["authorization"] for r in chats} == {"Bearer key-of-cronkey"}
    # One time each second from the first to the last: none skipped silently.
    seconds = [calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) for t in times]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))


async def test_an_ad_hoc_run_is_followed_as_server_sent_events(
    http: httpx2.AsyncClient, daemon: RunningDaemon
) -> None:
    started = await http.post(f"{C}/runs", json={"agent": "ops", "prompt": "hello there"})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    kinds: list[str] = []
    payloads: list[dict[str, Any]] = []
    async with http.stream("GET", f"{C}/runs/{run_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
                kinds.append(kind)
            elif line.startswith("data: "):
                payloads.append(orjson.loads(line[6:]))
    assert kinds[0] == "run_started" and "run_completed" in kinds and kinds[-1] == "run_closed"
    assert payloads[-1]["status"] == "succeeded"
    assert payloads[-1]["principal"].startswith("admin_token:")
    assert payloads[-1]["auth_profile_id"] is None  # the provider's own profiles served it


async def test_cron_api_refuses_bad_input_naming_the_field(http: httpx2.AsyncClient) -> None:
    base = {"name": "j", "agent": "ops", "schedule": "0 9 * * *", "prompt": "p"}
    cases = [
        ({"schedule": "0 25 * * *"}, "hour"),
        ({"agent": "ghost"}, "ghost"),
        ({"tz": "Mars/Olympus"}, "Mars/Olympus"),
        ({"profile": "nobody"}, "nobody"),
        ({"profile": "mine"}, "agent:someone-else"),
        ({"overlap": "sometimes"}, "queue_one"),
        ({"webhook_url": "http://x.test/h", "webhook_secret_ref": "hunter2"}, "reference"),
    ]
    for change, named in cases:
        response = await http.post(f"{C}/cron/jobs", json={**base, **change})
        assert response.status_code == 400, (change, response.text)
        message = response.json()["error"]["message"]
        assert named in message, (change, message)
        assert "hunter2" not in response.text
    assert (await http.get(f"{C}/cron/jobs")).json()["data"] == []
    missing = await http.get(f"{C}/cron/jobs/ghost")
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]["message"]


async def test_cron_routes_refuse_a_client_token(daemon: RunningDaemon) -> None:
    async with httpx2.AsyncClient(base_url=daemon.url, headers=daemon.headers) as client:
        for method, path in (("GET", f"{C}/cron/jobs"), ("POST", f"{C}/runs")):
            response = await client.request(method, path, json={})
            assert response.status_code == 401, response.text


async def test_job_crud_enable_run_now_explain_and_cancel_over_http(
    http: httpx2.AsyncClient,
) -> None:
    body = {"name": "daily", "agent": "ops", "schedule": "30 2 * * *", "prompt": "p"}
    body |= {"tz": "America/New_York", "retries": 2, "backoff_s": [5, 60], "enabled": False}
    job = (await http.post(f"{C}/cron/jobs", json=body)).json()
    assert job["retry"] == {"attempts": 3, "backoff_s": [5.0, 60.0]} and job["enabled"] is False
    again = await http.post(f"{C}/cron/jobs", json=body)
    assert again.status_code == 409 and "daily" in again.text
    patched = await http.patch(f"{C}/cron/jobs/daily", json={"schedule": "15 1 * * *"})
    assert patched.json()["schedule"]["expression"] == "15 1 * * *"
    enabled = (await http.post(f"{C}/cron/jobs/daily/enable")).json()
    assert enabled["enabled"] is True and enabled["next_run_at"] is not None
    explained = (await http.get(f"{C}/cron/jobs/daily/explain")).json()
    assert explained["zone"] == "America/New_York"
    assert all(t[11:19] == "01:15:00" for t in explained["next"]), explained["next"]
    run = (await http.post(f"{C}/cron/jobs/daily/run-now")).json()
    assert run["reason"] == "run-now" and run["scheduled_for"] is None

    async def finished() -> dict[str, Any] | None:
        got = (await http.get(f"{C}/runs/{run['id']}")).json()
        return got if got["finished_at"] else None

    assert (await wait_for(finished))["status"] == "succeeded"
    closed = await http.post(f"{C}/runs/{run['id']}/cancel")
    assert closed.status_code == 409 and "already ended" in closed.text
    deleted = await http.delete(f"{C}/cron/jobs/daily")
    assert deleted.json()["deleted"] is True
    assert (await http.get(f"{C}/runs/{run['id']}")).status_code == 200  # history stays


class Receiver:
    """A webhook receiver on loopback: answers the queued statuses in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.got: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?team=ops"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([503, 500])
    yield r
    r.close()


async def webhook_job(http: httpx2.AsyncClient, url: str) -> dict[str, Any]:
    body = {"name": "hooked", "agent": "ops", "schedule": "0 3 * * *", "prompt": "report"}
    body |= {"webhook_url": url, "webhook_secret_ref": HOOK_REF}
    created = await http.post(f"{C}/cron/jobs", json=body)
    assert created.status_code == 201, created.text
    run = (await http.post(f"{C}/cron/jobs/hooked/run-now")).json()

    async def delivery() -> dict[str, Any] | None:
        events = (await http.get(f"{C}/runs/{run['id']}")).json()["events"]
        return next((e for e in events if e["type"].startswith("webhook_")), None)

    return dict(await wait_for(delivery)) | {"run_id": run["id"]}


async def test_a_finished_run_is_posted_signed_and_retried_on_5xx(
    make_daemon: MakeDaemon, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    daemon = await make_daemon(CronConfig(webhook_allow_private=True, webhook_backoff_s=[0.1, 0.2]))
    async with httpx2.AsyncClient(base_url=daemon.url, headers=daemon.admin_headers) as http:
        event = await webhook_job(http, receiver.url)
        job = (await http.get(f"{C}/cron/jobs/hooked")).json()
    assert event["type"] == "webhook_delivered", event
    assert event["attempts"] == 3 and event["status"] == 200
    assert len(receiver.got) == 3
    for headers, body in receiver.got:
        assert headers["x-palyra-delivery"] == event["run_id"]
        assert verify(
            HOOK_SECRET, headers["x-palyra-timestamp"], body, headers["x-palyra-signature"]
        )
        assert not verify(
            "wrong", headers["x-palyra-timestamp"], body, headers["x-palyra-signature"]
        )
    payload = orjson.loads(receiver.got[-1][1])
    assert payload["run"]["id"] == event["run_id"] and payload["run"]["status"] == "succeeded"
    assert payload["job"]["name"] == "hooked" and payload["output"]
    assert job["webhook_secret_ref"] == HOOK_REF
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("palyra"))
    assert "attempt 1 failed (HTTP 503)" in ours and "team=ops" not in ours
    # Every log line at DEBUG (SQL parameters included) and the API's answers: no secret.
    assert HOOK_SECRET not in caplog.text and HOOK_SECRET not in str(job)


async def test_a_webhook_to_a_private_address_is_refused_by_default(
    make_daemon: MakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    # The upstream guard's rule: loopback is trusted (as for local model servers), private
    # networks (here 10/8) are refused before any connection unless webhook_allow_private.
    daemon = await make_daemon(CronConfig(webhook_backoff_s=[0.05]))
    async with httpx2.AsyncClient(base_url=daemon.url, headers=daemon.admin_headers) as http:
        event = await webhook_job(http, "http://10.20.30.40:9/hook")
    assert event["type"] == "webhook_failed" and event["delivered"] is False
    assert "private address" in event["error"], event
    assert HOOK_SECRET not in caplog.text


async def test_delivery_stops_at_a_4xx_and_gives_up_after_the_ladder() -> None:
    hits: list[int] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        hits.append(1)
        return httpx2.Response(int(request.url.path.strip("/")))

    async def secret() -> str:
        return "s"

    async def no_sleep(_: float) -> None:
        return None

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as client:
        for status, attempts, delivered in ((404, 1, False), (502, 3, False), (204, 1, True)):
            hits.clear()
            result = await deliver(
                client,
                f"http://hook.test/{status}",
                {"a": 1},
                delivery_id="r",
                secret=secret,
                clock=time.time,
                backoff_s=[1, 2],
                sleep=no_sleep,
            )
            assert (result.attempts, result.delivered, len(hits)) == (attempts, delivered, attempts)


async def test_a_scheduled_run_with_an_mcp_tool_closes_its_session_in_its_own_task(
    http: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"name": "texts", "agent": "texter", "schedule": "@daily", "tz": "Asia/Tokyo"}
    body["prompt"] = 'call text__reverse {"text": "stressed"}'
    assert (await http.post(f"{C}/cron/jobs", json=body)).status_code == 201
    run = (await http.post(f"{C}/cron/jobs/texts/run-now")).json()

    async def finished() -> dict[str, Any] | None:
        got = (await http.get(f"{C}/runs/{run['id']}")).json()
        return got if got["finished_at"] else None

    done = await wait_for(finished)
    assert done["status"] == "succeeded", (done["reason"], done["events"][-1])
    [result] = [e for e in done["events"] if e["type"] == "tool_result"]
    assert result["name"] == "text__reverse" and result["content"] == "desserts"
    await asyncio.sleep(0.5)
    gc.collect()
    await asyncio.sleep(0.2)
    # The MCP stdio session was closed where it was opened: no anyio cancel-scope error later.
    assert "cancel scope" not in caplog.text
    assert "Task exception was never retrieved" not in caplog.text
