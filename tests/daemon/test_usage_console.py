"""``/console/v1/usage`` and token limits through the console, and the usage figures on
``/metrics`` (tokens and cost by model and principal)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from usage_support import KEY, KEY_ENV, make_tokens, store_auth, usage_config

from palyra.daemon import AppState
from palyra.testing import FakeUpstream

RunningDaemon = Any
StartDaemon = Any
ASK = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


@pytest.fixture
def console(fake: FakeUpstream, start_daemon: StartDaemon, tmp_path: Path) -> Any:
    db = tmp_path / "palyra.db"
    [(token, token_id)] = make_tokens(db, ("team-a", None))
    auth, admin = store_auth(db)
    config = usage_config(fake.openai_base_url, fake.anthropic_base_url, db)
    daemon = start_daemon(AppState.from_config(config), auth=auth)
    return daemon, token, token_id, {"authorization": f"Bearer {admin}"}


def test_console_usage_groups_like_the_cli_and_counts_every_answered_request(
    console: Any,
) -> None:
    daemon, token, token_id, admin = console
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=token, max_retries=0)
    answers = [
        client.chat.completions.create(model=m, messages=ASK) for m in ("gpt", "gpt", "mini")
    ]  # type: ignore[arg-type]
    found = httpx2.get(f"{daemon.url}/console/v1/usage?by=token,model", headers=admin).json()
    assert found["by"] == ["token", "model"]
    rows = {(r["token"], r["model"]): r for r in found["data"]}
    assert set(rows) == {(token_id, "gpt"), (token_id, "mini")}
    gpt = rows[token_id, "gpt"]
    assert gpt["requests"] == 2
    assert gpt["input_tokens"] == sum(a.usage.prompt_tokens for a in answers[:2])  # type: ignore[union-attr]
    assert gpt["output_tokens"] == sum(a.usage.completion_tokens for a in answers[:2])  # type: ignore[union-attr]
    assert float(gpt["cost_usd"]) > 0 and gpt["unpriced_requests"] == 0
    total = httpx2.get(f"{daemon.url}/console/v1/usage?since=1h", headers=admin).json()
    assert [r["requests"] for r in total["data"]] == [3]


def test_console_usage_refuses_a_bad_grouping_naming_it(console: Any) -> None:
    daemon, _, _, admin = console
    bad = httpx2.get(f"{daemon.url}/console/v1/usage?by=team", headers=admin)
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        'cannot group by "team"; use one or more of: token, agent, model, provider, day'
    )
    when = httpx2.get(f"{daemon.url}/console/v1/usage?since=lastweek", headers=admin)
    assert when.status_code == 400
    assert "is neither a span (90m, 24h, 7d) nor a date or time" in when.json()["error"]["message"]


def test_console_sets_a_tokens_limits_and_the_daemon_applies_them(console: Any) -> None:
    daemon, token, token_id, admin = console
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=token, max_retries=0)
    client.chat.completions.create(model="mini", messages=ASK)  # type: ignore[arg-type]
    url = f"{daemon.url}/console/v1/tokens/{token_id}/limits"
    wrong = httpx2.patch(url, json={"models": ["gpt", "gtp"]}, headers=admin)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["message"].startswith(
        'limits.models names "gtp", which is not a configured model or alias (known: '
    )
    typo = httpx2.patch(url, json={"rmp": 3}, headers=admin)
    assert typo.status_code == 400 and "rmp" in typo.json()["error"]["message"]
    done = httpx2.patch(url, json={"models": ["gpt"], "budget_usd_month": 10}, headers=admin)
    assert done.status_code == 200
    assert done.json()["limits"] == {"models": ["gpt"], "budget_usd_month": 10.0}
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="mini", messages=ASK)  # type: ignore[arg-type]
    client.chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]
    made = httpx2.post(
        f"{daemon.url}/console/v1/tokens",
        json={"name": "capped", "limits": {"rpm": 1}},
        headers=admin,
    )
    assert made.status_code == 201 and made.json()["limits"] == {"rpm": 1}
    capped = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=made.json()["token"], max_retries=0)
    capped.chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        capped.chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]


def test_metrics_count_tokens_and_cost_by_model_and_principal(console: Any) -> None:
    daemon, token, token_id, admin = console
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=token, max_retries=0)
    answer = client.chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]
    assert answer.usage is not None
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:
        text = httpx2.get(f"{daemon.url}/metrics", headers=admin).text
        if "palyra_usage_cost_usd_total" in text and f"token:{token_id}" in text:
            break
        time.sleep(0.1)
    who = f'principal="token:{token_id}"'
    assert (
        f'palyra_usage_tokens_total{{model="gpt",{who},kind="input"}} {answer.usage.prompt_tokens}'
        in text
    )
    assert (
        f'palyra_usage_tokens_total{{model="gpt",{who},kind="output"}} '
        f"{answer.usage.completion_tokens}" in text
    )
    cost = re.search(rf'palyra_usage_cost_usd_total{{model="gpt",{who}}} (\S+)', text)
    assert cost and float(cost.group(1)) > 0
    assert 'palyra_usage_ledger{state="dropped"} 0' in text
