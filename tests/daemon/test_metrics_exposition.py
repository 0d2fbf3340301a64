"""``/metrics``: valid Prometheus text that counts requests, latency and stream interruptions."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from palyra.config.schema import default_config
from palyra.daemon import AppState
from palyra.daemon.observe.metrics import Counter, Histogram, Metrics
from palyra.model import ChatRequest, StreamEvent, TextDelta
from palyra.providers.deterministic import DeterministicProvider

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_prometheus(text: str) -> Samples:
    """A strict reader of the text format: every line is a comment or a well-formed sample."""
    samples: Samples = {}
    typed: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "histogram"}
            typed[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, _, body, value = match.groups()
        labels: list[tuple[str, str]] = []
        rest = body or ""
        while rest:
            label = _LABEL.match(rest)
            assert label, f"bad labels in {line!r}"
            raw = label.group(2)
            unescaped = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), raw)
            labels.append((label.group(1), unescaped))
            rest = rest[label.end() :]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no TYPE line"
        key = (name, frozenset(labels))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value.replace("+Inf", "inf"))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(running: RunningDaemon) -> Samples:
    response = httpx2.get(f"{running.url}/metrics", headers=running.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_prometheus(response.text)


def test_histogram_buckets_are_cumulative_and_end_in_inf() -> None:
    histogram = Histogram("h_seconds", "help", ("route",), buckets=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(("/x",), seconds)
    text = "\n".join(histogram.render()) + "\n"
    samples = parse_prometheus(text)
    assert value(samples, "h_seconds_bucket", route="/x", le="0.1") == 2
    assert value(samples, "h_seconds_bucket", route="/x", le="1") == 3
    assert value(samples, "h_seconds_bucket", route="/x", le="+Inf") == 4
    assert value(samples, "h_seconds_count", route="/x") == 4
    assert math.isclose(value(samples, "h_seconds_sum", route="/x"), 3.65)


def test_label_values_are_escaped() -> None:
    counter = Counter("c_total", "help", ("model",))
    counter.inc(('we"ird\\name\nx',), 2)
    samples = parse_prometheus("\n".join(counter.render()) + "\n")
    assert value(samples, "c_total", model='we"ird\\name\nx') == 2


def test_breaker_gauge_reads_the_routing_callback_at_scrape_time() -> None:
    metrics = Metrics()
    phases = {"target:openai/gpt": "open"}
    metrics.set_breaker_source(lambda: phases)
    assert (
        value(parse_prometheus(metrics.render()), "palyra_breaker_state", scope="target:openai/gpt")
        == 2
    )
    phases["target:openai/gpt"] = "half_open"
    samples = parse_prometheus(metrics.render())
    assert value(samples, "palyra_breaker_state", scope="target:openai/gpt") == 1


def test_a_request_is_counted_by_route_model_and_status(daemon: RunningDaemon) -> None:
    client = daemon.openai_client()
    client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    httpx2.get(f"{daemon.url}/v1/models")  # refused: counted as 401 on its route
    samples = scrape(daemon)
    labels = {"route": "/v1/chat/completions", "model": "default", "status": "200"}
    assert value(samples, "palyra_requests_total", **labels) == 1
    assert value(samples, "palyra_request_duration_seconds_count", **labels) == 1
    assert value(samples, "palyra_request_duration_seconds_bucket", **labels, le="+Inf") == 1
    refused = {"route": "/v1/models", "model": "none", "status": "401"}
    assert value(samples, "palyra_requests_total", **refused) == 1


def test_metrics_take_admin_or_client_tokens_but_not_none(daemon: RunningDaemon) -> None:
    url = f"{daemon.url}/metrics"
    assert httpx2.get(url, headers=daemon.admin_headers).status_code == 200
    assert httpx2.get(url, headers=daemon.headers).status_code == 200
    assert httpx2.get(url).status_code == 401


class HangingProvider(DeterministicProvider):
    """Streams its first text, then waits until the stream is closed."""

    async def stream_chat(
        self, request: ChatRequest, *, credential: object = None
    ) -> AsyncIterator[StreamEvent]:
        async for event in super().stream_chat(request):
            yield event
            if isinstance(event, TextDelta):
                await asyncio.Event().wait()


def test_a_client_leaving_mid_stream_is_a_stream_interruption(start_daemon: StartDaemon) -> None:
    provider = HangingProvider(id="deterministic")
    running = start_daemon(AppState(config=default_config(), providers={"deterministic": provider}))
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    with httpx2.stream(
        "POST", f"{running.url}/v1/chat/completions", json=body, headers=running.headers
    ) as response:
        assert next(response.iter_bytes()).startswith(b"data: ")
    labels = {"route": "/v1/chat/completions", "model": "default", "cause": "client"}
    deadline = time.monotonic() + 5
    while value(scrape(running), "palyra_stream_interruptions_total", **labels) != 1:
        assert time.monotonic() < deadline, "the interruption was never counted"
        time.sleep(0.01)
    samples = scrape(running)
    assert (
        value(
            samples, "palyra_requests_total", route=labels["route"], model="default", status="200"
        )
        == 1
    )


def test_a_request_queued_at_a_concurrency_limit_shows_in_metrics(
    start_daemon: StartDaemon,
) -> None:
    config = default_config()
    limited = config.model_provider.providers[0].model_copy(update={"max_concurrency": 1})
    config.model_provider.providers[0] = limited
    provider = HangingProvider(id=limited.id)
    running = start_daemon(AppState(config=config, providers={limited.id: provider}))
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    url = f"{running.url}/v1/chat/completions"

    def until(name: str, wanted: float) -> Samples:
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(running)
            if value(samples, name, limit=limited.id) == wanted:
                return samples
            assert time.monotonic() < deadline, f"{name} never reached {wanted}"
            time.sleep(0.02)

    second: list[bytes] = []

    def ask_again() -> None:
        with httpx2.stream("POST", url, json=body, headers=running.headers, timeout=20) as reply:
            second.append(next(reply.iter_bytes()))

    with httpx2.stream("POST", url, json=body, headers=running.headers) as first:
        chunks = first.iter_bytes()  # kept: a dropped iterator closes the response
        assert next(chunks).startswith(b"data: ")  # the stream holds the only slot
        waiter = threading.Thread(target=ask_again)
        waiter.start()
        samples = until("palyra_concurrency_waiting", 1)
        assert value(samples, "palyra_concurrency_in_use", limit=limited.id) == 1
        assert value(samples, "palyra_concurrency_waits_total", limit=limited.id) == 1
    waiter.join(timeout=20)  # the first stream's end freed the slot for it
    assert second and second[0].startswith(b"data: ")
    samples = until("palyra_concurrency_waiting", 0)
    assert value(samples, "palyra_concurrency_wait_seconds_total", limit=limited.id) > 0
    assert value(samples, "palyra_concurrency_refusals_total", limit=limited.id) == 0
