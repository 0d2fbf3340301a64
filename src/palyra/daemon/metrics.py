"""Prometheus text exposition, by hand: counters, fixed-bucket histograms, callback gauges.

Everything runs on the daemon's one event loop, so plain dict updates need no locks; an update
is a dict lookup and an add, cheap enough for every request.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence

Labels = tuple[str, ...]
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Breaker phases as gauge values, so alerts can say "> 0" for "not closed".
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(value)


class Counter:
    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, labels: Labels) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


class Histogram:
    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self.buckets = tuple(sorted(buckets))
        # Per label set: one count per bucket (non-cumulative; +Inf last), then sum.
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.buckets) + 1)
        counts[bisect_left(self.buckets, value)] += 1
        self.sums[labels] = self.sums.get(labels, 0.0) + value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, counts in sorted(self.counts.items()):
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = f'le="{_number(bound)}"'
                yield f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {running}"
            yield f"{self.name}_sum{_labels(self.labelnames, labels)} {_number(self.sums[labels])}"
            yield f"{self.name}_count{_labels(self.labelnames, labels)} {running}"


GaugeSource = Callable[[], Mapping[Labels, float]]


class CallbackGauge:
    """A gauge read at scrape time from whoever owns the figure (e.g. routing's breakers)."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self.source: GaugeSource | None = None

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        values = self.source() if self.source is not None else {}
        for labels, value in sorted(values.items()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


class Metrics:
    """The daemon's metrics; the observability middleware feeds the request figures."""

    def __init__(self) -> None:
        self.requests = Counter(
            "palyra_requests_total", "HTTP requests answered.", ("route", "model", "status")
        )
        self.latency = Histogram(
            "palyra_request_duration_seconds",
            "Time from request to the last response byte.",
            ("route", "model", "status"),
        )
        self.upstream_attempts = Counter(
            "palyra_upstream_attempts_total",
            "Upstream calls made, by provider, upstream model and outcome.",
            ("provider", "model", "outcome"),
        )
        self.failovers = Counter(
            "palyra_failovers_total", "Moves to another model within one request.", ("model",)
        )
        self.tokens = Counter(
            "palyra_tokens_total", "Tokens reported by providers.", ("model", "direction")
        )
        self.stream_interruptions = Counter(
            "palyra_stream_interruptions_total",
            "Streamed responses that did not finish normally.",
            ("route", "model", "cause"),
        )
        self.breakers = CallbackGauge(
            "palyra_breaker_state",
            "Circuit breaker phase per scope: 0 closed, 1 half-open, 2 open.",
            ("scope",),
        )

    def set_breaker_source(self, phases: Callable[[], Mapping[str, str]]) -> None:
        """Routing hands over a callable returning ``{breaker scope: phase name}``."""

        def gauge() -> Mapping[Labels, float]:
            return {(scope,): BREAKER_VALUES.get(phase, -1.0) for scope, phase in phases().items()}

        self.breakers.source = gauge

    def add_tokens(self, model: str, input_tokens: int, output_tokens: int) -> None:
        if input_tokens:
            self.tokens.inc((model, "input"), input_tokens)
        if output_tokens:
            self.tokens.inc((model, "output"), output_tokens)

    def render(self) -> str:
        metrics = (
            self.requests,
            self.latency,
            self.upstream_attempts,
            self.failovers,
            self.tokens,
            self.stream_interruptions,
            self.breakers,
        )
        return "\n".join(line for metric in metrics for line in metric.render()) + "\n"
