"""Usage and limits across real ``palyra serve`` processes: a killed daemon loses at most the
ledger's documented window, and two daemons behind one Redis share one rpm window and one
budget."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from usage_support import KEY, config_toml, ledger_rows, make_tokens, serve

from palyra.config.schema import LimitSpec
from palyra.testing import FakeUpstream

pytestmark = pytest.mark.slow
WINDOW_S = 1.0  # the README's promise: a crash loses at most the last second


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_keys={KEY}) as upstream:
        yield upstream


def client(url: str, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=30)


def test_a_killed_daemon_loses_at_most_the_last_second_of_the_ledger(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    db = tmp_path / "palyra.db"
    [(token, token_id)] = make_tokens(db, ("crash", None))
    config = tmp_path / "palyra.toml"
    config.write_text(config_toml(fake.openai_base_url, db))
    process, url = serve(config, tmp_path / "state")
    finished: list[tuple[str, float]] = []
    try:
        api = client(url, token)
        deadline = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < deadline:
            n += 1
            request_id = f"crash-{n}"
            api.chat.completions.create(
                model="gpt",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-request-id": request_id},
            )
            finished.append((request_id, time.monotonic()))
        process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    written = {r["request_id"] for r in ledger_rows(db) if r["row_kind"] == "request"}
    assert written <= {rid for rid, _ in finished}
    old = [rid for rid, at in finished if killed_at - at > WINDOW_S]
    assert len(old) > 10, "enough traffic before the window to show something"
    missing = [rid for rid in old if rid not in written]
    assert missing == [], f"requests answered over {WINDOW_S}s before the kill were lost"
    assert all(r["token_id"] == token_id for r in ledger_rows(db))


@pytest.mark.redis
def test_two_daemons_behind_one_redis_share_the_rpm_window_and_the_budget(
    fake: FakeUpstream, tmp_path: Path, redis_url: str
) -> None:
    db = tmp_path / "palyra.db"
    (rpm_token, _), (budget_token, _) = make_tokens(
        db, ("rpm", LimitSpec(rpm=3)), ("budget", LimitSpec(budget_tokens_day=40))
    )
    config = tmp_path / "palyra.toml"
    config.write_text(config_toml(fake.openai_base_url, db, redis_url=redis_url))
    first, first_url = serve(config, tmp_path / "state")
    second, second_url = serve(config, tmp_path / "state")
    ask = [{"role": "user", "content": "hello there"}]
    try:
        a, b = client(first_url, rpm_token), client(second_url, rpm_token)
        a.chat.completions.create(model="gpt", messages=ask)  # type: ignore[arg-type]
        b.chat.completions.create(model="gpt", messages=ask)  # type: ignore[arg-type]
        a.chat.completions.create(model="gpt", messages=ask)  # type: ignore[arg-type]
        for other in (b, a):
            with pytest.raises(openai.RateLimitError) as refused:
                other.chat.completions.create(model="gpt", messages=ask)  # type: ignore[arg-type]
            body = refused.value.body
            assert isinstance(body, dict)
            assert "made 3 requests in the last minute, its rpm limit is 3" in body["message"]

        spend_a, spend_b = client(first_url, budget_token), client(second_url, budget_token)
        used = 0
        for api in (spend_a, spend_b) * 5:
            try:
                answer = api.chat.completions.create(model="gpt", messages=ask)  # type: ignore[arg-type]
            except openai.APIStatusError as exc:
                assert exc.status_code == 402
                body = exc.body
                assert isinstance(body, dict)
                assert body["code"] == "budget_exhausted"
                # Charged once answered, so the last answer may still be on its way to Redis.
                charged = re.search(r"of 40 tokens: (\d+) tokens spent", body["message"])
                assert charged, body["message"]
                assert 40 <= int(charged.group(1)) <= used
                break
            assert answer.usage is not None
            used += answer.usage.total_tokens
        else:
            pytest.fail(f"the shared budget never refused ({used} tokens used)")
        assert used >= 40
    finally:
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
        for process in (first, second):
            try:
                process.wait(15)
            except Exception:
                process.kill()
                process.wait()
