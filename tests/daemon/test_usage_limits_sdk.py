"""Limits per client token through a real daemon, with the official SDKs as clients: each
limit on its own and together, in OpenAI's and Anthropic's error shapes, naming the limit and
when it resets."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from usage_support import KEY, KEY_ENV, make_tokens, store_auth, usage_config

from palyra.config.schema import LimitSpec
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


class Limited:
    """A daemon and, per name, a client token with its limits; SDK clients for each."""

    def __init__(self, daemon: RunningDaemon, tokens: dict[str, str]) -> None:
        self.daemon = daemon
        self.tokens = tokens

    def openai(self, name: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.daemon.url}/v1", api_key=self.tokens[name], max_retries=0
        )

    def claude(self, name: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.daemon.url, api_key=self.tokens[name], max_retries=0
        )


@pytest.fixture
def limited(fake: FakeUpstream, start_daemon: StartDaemon, tmp_path: Path) -> Limited:
    db = tmp_path / "palyra.db"
    specs = {
        "two-models": LimitSpec(models=["gpt", "sonnet"]),
        "rpm": LimitSpec(rpm=2),
        "tpm": LimitSpec(tpm=40),
        "one-at-a-time": LimitSpec(concurrency=1),
        "budget": LimitSpec(budget_tokens_day=60, soft_ratio=0.25),
        "together": LimitSpec(models=["gpt", "sonnet"], rpm=3, budget_tokens_month=100_000),
    }
    made = make_tokens(db, *specs.items())
    auth, _ = store_auth(db)
    config = usage_config(fake.openai_base_url, fake.anthropic_base_url, db)
    daemon = start_daemon(AppState.from_config(config), auth=auth)
    return Limited(daemon, {name: token for name, (token, _) in zip(specs, made, strict=True)})


def chat(client: openai.OpenAI, model: str = "gpt") -> Any:
    return client.chat.completions.with_raw_response.create(model=model, messages=ASK)  # type: ignore[arg-type]


def message(client: anthropic.Anthropic, model: str = "sonnet") -> Any:
    return client.messages.with_raw_response.create(
        model=model,
        max_tokens=50,
        messages=ASK,  # type: ignore[arg-type]
    )


def test_the_allowlist_refuses_other_models_in_both_shapes(limited: Limited) -> None:
    chat(limited.openai("two-models"))
    message(limited.claude("two-models"))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(limited.openai("two-models"), "mini")
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["type"], error["code"], error["param"]) == (
        "permission_error",
        "model_not_allowed",
        "model",
    )
    assert re.fullmatch(
        r'client token "tok_[0-9a-f]+" may not use model "mini" \(allowed: gpt, sonnet\)',
        error["message"],
    )
    with pytest.raises(anthropic.PermissionDeniedError) as claude_refused:
        message(limited.claude("two-models"), "haiku")
    body = claude_refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "permission_error"
    assert 'may not use model "haiku" (allowed: gpt, sonnet)' in body["error"]["message"]


def _retry_after(headers: Any) -> float:
    return float(headers["retry-after"])


def test_rpm_refuses_the_third_request_with_a_reset_time_in_both_shapes(limited: Limited) -> None:
    client = limited.openai("rpm")
    chat(client)
    message(limited.claude("rpm"))
    before = datetime.now(UTC)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rpm_limit_exceeded")
    found = re.fullmatch(
        r'client token "tok_[0-9a-f]+" made 2 requests in the last minute, its rpm limit is 2 '
        r"\(rpm limit\); retry after (\d+\.\d) s, at (\S+)",
        error["message"],
    )
    assert found, error["message"]
    wait = _retry_after(refused.value.response.headers)
    assert 1 <= wait <= 61
    reset = datetime.strptime(found.group(2), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= reset <= before + timedelta(seconds=61)
    with pytest.raises(anthropic.RateLimitError) as claude_refused:
        message(limited.claude("rpm"))
    body = claude_refused.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "rate_limit_error"
    assert "its rpm limit is 2 (rpm limit); retry after" in body["error"]["message"]
    assert claude_refused.value.response.headers["retry-after"]


def test_tpm_refuses_once_the_minute_holds_its_tokens(limited: Limited) -> None:
    client = limited.openai("tpm")
    used = 0
    refused = None
    for _ in range(20):
        try:
            answer = chat(client).parse()
        except openai.RateLimitError as exc:
            refused = exc
            break
        used += answer.usage.total_tokens
    assert refused is not None and used >= 40
    error = refused.body
    assert isinstance(error, dict)
    assert error["code"] == "tpm_limit_exceeded"
    assert f"used {used} tokens in the last minute, its tpm limit is 40" in error["message"]
    assert _retry_after(refused.response.headers) >= 1


def test_concurrency_refuses_a_second_request_while_one_is_in_flight(
    limited: Limited, fake: FakeUpstream
) -> None:
    fake.settings.latency_ms = 1500
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.setdefault("answer", chat(limited.openai("one-at-a-time")))
    )
    worker.start()
    time.sleep(0.5)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(limited.openai("one-at-a-time"))
    worker.join(10)
    assert first["answer"].status_code == 200
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "concurrency_limit_exceeded"
    assert "has 1 requests in flight, its concurrency limit" in error["message"]
    fake.settings.latency_ms = 0
    assert chat(limited.openai("one-at-a-time")).status_code == 200, "freed when it ended"


def test_soft_budget_warns_in_a_header_and_the_hard_one_refuses_with_402(
    limited: Limited,
) -> None:
    client = limited.openai("budget")
    warnings = []
    refused = None
    for _ in range(20):
        try:
            raw = chat(client)
        except openai.APIStatusError as exc:
            refused = exc
            break
        warnings.append(raw.headers.get("x-palyra-budget-warning"))
    assert refused is not None
    assert warnings[0] is None, "no warning before a quarter of the budget is spent"
    shown = [w for w in warnings if w]
    assert shown, "a warning once past soft_ratio"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert re.fullmatch(
        rf"token=tok_[0-9a-f]+ budget_tokens_day \d+ tokens of 60 tokens \(\d+%\), resets "
        rf"{tomorrow}T00:00:00Z",
        shown[-1],
    ), shown[-1]
    assert refused.status_code == 402
    error = refused.body
    assert isinstance(error, dict)
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exhausted")
    assert re.fullmatch(
        rf'client token "tok_[0-9a-f]+" has used its daily budget \(budget_tokens_day\) of 60 '
        rf"tokens: \d+ tokens spent; it resets at {tomorrow}T00:00:00Z \(in \d+ s\)",
        error["message"],
    ), error["message"]
    midnight = datetime.strptime(tomorrow, "%Y-%m-%d").replace(tzinfo=UTC)
    left = (midnight - datetime.now(UTC)).total_seconds()
    assert abs(_retry_after(refused.response.headers) - left) < 5
    claude = limited.claude("budget")
    with pytest.raises(anthropic.APIStatusError) as claude_refused:
        message(claude)
    assert claude_refused.value.status_code == 402
    body = claude_refused.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "billing_error"
    assert "has used its daily budget (budget_tokens_day) of 60 tokens" in body["error"]["message"]


def test_limits_together_check_the_allowlist_first_and_spend_no_slot_on_a_refusal(
    limited: Limited,
) -> None:
    client = limited.openai("together")
    with pytest.raises(openai.PermissionDeniedError):
        chat(client, "mini")
    for _ in range(3):
        chat(client)  # the refused request took none of the three rpm slots
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "rpm_limit_exceeded"
    with pytest.raises(openai.PermissionDeniedError):
        chat(client, "mini")  # still the allowlist's answer, not the rpm's
    with pytest.raises(anthropic.RateLimitError):
        message(limited.claude("together"))


def test_a_token_without_limits_is_never_refused(
    limited: Limited, fake: FakeUpstream, tmp_path: Path
) -> None:
    [(token, _)] = make_tokens(tmp_path / "palyra.db", ("free", None))
    client = openai.OpenAI(base_url=f"{limited.daemon.url}/v1", api_key=token, max_retries=0)
    for model in ("gpt", "mini", "gpt", "gpt", "mini"):
        raw = chat(client, model)
        assert raw.status_code == 200
        assert "x-palyra-budget-warning" not in raw.headers
