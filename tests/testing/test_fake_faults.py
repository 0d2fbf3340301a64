"""Queued faults and global misbehaviour, each observed the way a client experiences it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest

from palyra.testing import FakeUpstream, Fault, FaultKind

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}]}
STREAM = {**CHAT, "stream": True}
AUTH = {"authorization": "Bearer k"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as running:
        yield running


@pytest.fixture
def fake(shared: FakeUpstream) -> FakeUpstream:
    shared.clear()
    return shared


def _post(fake: FakeUpstream, body: dict[str, Any] = CHAT, **kw: Any) -> httpx2.Response:
    return httpx2.post(fake.openai_base_url + "/chat/completions", json=body, headers=AUTH, **kw)


def _stream_lines(fake: FakeUpstream) -> tuple[list[str], BaseException | None]:
    """SSE lines received before the stream ended or broke, and how it broke."""
    lines: list[str] = []
    try:
        with httpx2.stream(
            "POST", fake.openai_base_url + "/chat/completions", json=STREAM, headers=AUTH
        ) as r:
            for line in r.iter_lines():
                if line:
                    lines.append(line)
    except httpx2.HTTPError as exc:
        return lines, exc
    return lines, None


def test_server_error_fault_uses_the_provider_shape_and_status(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=503))
    r = _post(fake)
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "server_error"
    fake.faults.push(Fault(FaultKind.SERVER_ERROR, status=529))
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_rate_limit_fault_sends_retry_after(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.RATE_LIMIT, retry_after_s=2.5))
    r = _post(fake)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.headers["retry-after-ms"] == "2500"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_each_fault_is_consumed_by_exactly_one_request(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.SERVER_ERROR), Fault(FaultKind.INVALID_KEY))
    assert [_post(fake).status_code for _ in range(3)] == [500, 401, 200]
    assert len(fake.faults) == 0


def test_faults_can_target_a_model_or_a_path(fake: FakeUpstream) -> None:
    fake.faults.push(
        Fault(FaultKind.SERVER_ERROR, model="other"), Fault(FaultKind.RATE_LIMIT, path="/v1/models")
    )
    assert _post(fake).status_code == 200
    assert _post(fake, {**CHAT, "model": "other"}).status_code == 500
    assert _post(fake).status_code == 200
    assert httpx2.get(fake.openai_base_url + "/models", headers=AUTH).status_code == 429


def test_context_length_fault_is_what_the_sdk_sees_for_a_long_prompt(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.CONTEXT_LENGTH))
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.code == "context_length_exceeded"


def test_slow_first_byte_delays_then_answers(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.SLOW_FIRST_BYTE, delay_ms=200))
    started = time.monotonic()
    r = _post(fake)
    assert time.monotonic() - started >= 0.2
    assert r.status_code == 200


def test_hang_makes_the_client_time_out_and_the_server_stays_healthy(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.HANG))
    with pytest.raises(httpx2.ReadTimeout):
        _post(fake, timeout=0.2)
    assert _post(fake).status_code == 200


def test_connection_reset_gives_no_http_response(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.CONNECTION_RESET))
    with pytest.raises((httpx2.ReadError, httpx2.RemoteProtocolError)):
        _post(fake)
    assert _post(fake).status_code == 200


def test_stream_cut_closes_after_n_events(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.STREAM_CUT, after_chunks=3))
    lines, error = _stream_lines(fake)
    assert isinstance(error, httpx2.RemoteProtocolError)
    assert len(lines) == 3
    assert "data: [DONE]" not in lines


def test_stream_cut_on_a_whole_answer_leaves_the_body_incomplete(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.STREAM_CUT))
    with pytest.raises(httpx2.RemoteProtocolError):
        _post(fake)


def test_malformed_sse_sends_one_non_json_event_then_ends_normally(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.MALFORMED_SSE, after_chunks=1))
    lines, error = _stream_lines(fake)
    assert error is None
    assert lines[-1] == "data: [DONE]"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(lines[1].removeprefix("data: "))
    fake.faults.push(Fault(FaultKind.MALFORMED_SSE, after_chunks=1))
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    with pytest.raises(ValueError):
        list(client.chat.completions.create(**STREAM))  # type: ignore[call-overload]


def test_malformed_json_body_is_a_200_that_does_not_parse(fake: FakeUpstream) -> None:
    fake.faults.push(Fault(FaultKind.MALFORMED_JSON))
    r = _post(fake)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_fail_rate_one_fails_every_request_with_fail_status(fake: FakeUpstream) -> None:
    fake.settings.fail_rate, fake.settings.fail_status = 1.0, 502
    try:
        assert {_post(fake).status_code for _ in range(3)} == {502}
    finally:
        fake.settings.fail_rate = 0.0


def test_rate_limit_rpm_uses_the_injected_clock() -> None:
    clock = Clock()
    with FakeUpstream(rate_limit_rpm=2, clock=clock) as fake:
        assert [_post(fake).status_code for _ in range(2)] == [200, 200]
        clock.now += 45
        limited = _post(fake)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "15"
        clock.now += 15
        assert _post(fake).status_code == 200


def test_latency_applies_before_every_answer() -> None:
    with FakeUpstream(latency_ms=150) as fake:
        started = time.monotonic()
        assert _post(fake).status_code == 200
        assert time.monotonic() - started >= 0.15


def test_every_request_is_recorded_and_clear_forgets_them() -> None:
    clock = Clock()
    with FakeUpstream(clock=clock) as fake:
        _post(fake)
        httpx2.get(fake.openai_base_url + "/models?limit=2", headers=AUTH)
        first, second = fake.requests
        assert (first.method, first.path, first.model) == (
            "POST",
            "/v1/chat/completions",
            "gpt-4o-mini",
        )
        assert first.body == CHAT
        assert first.headers["authorization"] == "Bearer k"
        assert first.received_at == 1_000.0
        assert (second.method, second.path, second.query, second.body) == (
            "GET",
            "/v1/models",
            "limit=2",
            None,
        )
        assert "Bearer k" not in repr(first)
        fake.faults.push(Fault(FaultKind.HANG))
        fake.clear()
        assert fake.requests == []
        assert len(fake.faults) == 0


def test_streaming_is_real_first_chunk_arrives_before_the_server_finishes() -> None:
    with FakeUpstream(stream_chunk_delay_ms=60) as fake:
        started = time.monotonic()
        with httpx2.stream(
            "POST", fake.openai_base_url + "/chat/completions", json=STREAM, headers=AUTH
        ) as r:
            arrivals = [time.monotonic() - started for line in r.iter_lines() if line]
    # role, 5 words, finish, [DONE] with 60 ms between events: the first is in hand at least
    # 7 gaps before the last, which a buffered "stream" could not do.
    assert len(arrivals) == 8
    assert arrivals[-1] - arrivals[0] >= 7 * 0.06 * 0.9


async def test_async_context_manager_serves_in_the_current_loop() -> None:
    async with FakeUpstream() as fake, httpx2.AsyncClient(base_url=fake.openai_base_url) as client:
        r = await client.post("/chat/completions", json=CHAT, headers=AUTH)
        assert r.json()["choices"][0]["message"]["content"] == "You said: one two three"


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="fail_rate must be between 0 and 1"):
        FakeUpstream(fail_rate=1.5)
    with pytest.raises(TypeError, match="unknown setting"):
        FakeUpstream(latency=5)
    with pytest.raises(ValueError, match="needs a 5xx status"):
        Fault(FaultKind.SERVER_ERROR, status=404)


def test_repr_never_shows_api_keys() -> None:
    fake = FakeUpstream(api_keys=frozenset({"sk-secret-value"}))
    assert "sk-secret-value" not in repr(fake)
    assert "sk-secret-value" not in repr(fake.settings)
