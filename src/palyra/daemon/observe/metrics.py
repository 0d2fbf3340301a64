"""Prometheus text exposition, by hand: counters, fixed-bucket histograms, callback gauges.

Everything runs on the daemon's one event loop, so plain dict updates need no locks; an update
is a dict lookup and an add, cheap enough for every request.

With several worker processes (``[daemon] workers``) each worker keeps its own registry and
publishes a :meth:`Metrics.snapshot` about once a second (see :mod:`palyra.daemon.server.workers`);
whichever worker a scrape lands on renders its live figures merged with its siblings'
snapshots (``Metrics.peers``): counters and histograms summed, gauges reported per worker with a
``worker`` label. Nothing of that touches the per-request path.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from palyra.usage.facts import UsageFact

Labels = tuple[str, ...]
# One registry's figures as plain JSON data: {"counters": {name: [[labels, value], ...]},
# "histograms": {name: [[labels, per-bucket counts, sum], ...]}, "gauges": {name: [[labels,
# value], ...]}, "worker": slot index}. Written to files, so only lists, strings and numbers.
Snapshot = dict[str, Any]
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

    def read(self) -> Mapping[Labels, float]:
        return self.values

    def render(self, values: Mapping[Labels, float] | None = None) -> Iterable[str]:
        """The exposition of this counter's own values, or of ``values`` (merged figures)."""
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted((self.read() if values is None else values).items()):
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

    def render(
        self,
        counts: Mapping[Labels, Sequence[int]] | None = None,
        sums: Mapping[Labels, float] | None = None,
    ) -> Iterable[str]:
        """The exposition of this histogram's own figures, or of ``counts`` and ``sums``."""
        if counts is None or sums is None:
            counts, sums = self.counts, self.sums
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, per_bucket in sorted(counts.items()):
            running = 0
            for bound, count in zip((*self.buckets, math.inf), per_bucket, strict=True):
                running += count
                le = f'le="{_number(bound)}"'
                yield f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {running}"
            yield f"{self.name}_sum{_labels(self.labelnames, labels)} {_number(sums[labels])}"
            yield f"{self.name}_count{_labels(self.labelnames, labels)} {running}"


GaugeSource = Callable[[], Mapping[Labels, float]]


class CallbackCounter(Counter):
    """A counter whose values its owner keeps (e.g. routing's lease queues) and that is read
    at scrape time; summed over workers like any counter."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, help_text, labelnames)
        self.source: GaugeSource | None = None

    def read(self) -> Mapping[Labels, float]:
        return self.source() if self.source is not None else {}

    def get(self, labels: Labels) -> float:
        return self.read().get(labels, 0.0)

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        raise TypeError(f"{self.name} is read from its source, not incremented")


class CallbackGauge:
    """A gauge read at scrape time from whoever owns the figure (e.g. routing's breakers)."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self.source: GaugeSource | None = None

    def read(self) -> Mapping[Labels, float]:
        return self.source() if self.source is not None else {}

    def render(
        self, per_worker: Mapping[str, Mapping[Labels, float]] | None = None
    ) -> Iterable[str]:
        """The exposition of the live values, or of ``per_worker`` values with a ``worker``
        label (figures that differ per process cannot be added up truthfully)."""
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        if per_worker is None:
            for labels, value in sorted(self.read().items()):
                yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"
            return
        names = (*self.labelnames, "worker")
        rows = [
            ((*labels, worker), value)
            for worker, values in per_worker.items()
            for labels, value in values.items()
        ]
        for labels, value in sorted(rows, key=lambda row: (row[0][:-1], _worker_key(row[0][-1]))):
            yield f"{self.name}{_labels(names, labels)} {_number(value)}"


def _worker_key(worker: str) -> tuple[int, str]:
    return (int(worker), "") if worker.isdigit() else (-1, worker)


MAX_AGENT_LABELS = 100
MAX_PRINCIPAL_LABELS = 200


class Metrics:
    """The daemon's metrics; the observability middleware feeds the request figures."""

    def __init__(self) -> None:
        # With several workers: this worker's slot and a callable returning the siblings'
        # snapshots (and the retired workers' totals); None renders this registry alone.
        self.worker: int | None = None
        self.peers: Callable[[], Iterable[Snapshot]] | None = None
        self._agent_labels: set[str] = set()
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
        self.agent_requests = Counter(
            "palyra_agent_requests_total",
            "HTTP requests made with a token bound to an agent, by agent and status.",
            ("agent", "status"),
        )
        self.breakers = CallbackGauge(
            "palyra_breaker_state",
            "Circuit breaker phase per scope: 0 closed, 1 half-open, 2 open.",
            ("scope",),
        )
        self._principal_labels: set[str] = set()
        self.usage_tokens = Counter(
            "palyra_usage_tokens_total",
            "Tokens of answered requests, by model, principal and kind (as the ledger has them).",
            ("model", "principal", "kind"),
        )
        self.usage_cost = Counter(
            "palyra_usage_cost_usd_total",
            "Cost of answered requests in USD at the pricing table's rates, by model and principal.",
            ("model", "principal"),
        )
        self.unpriced = Counter(
            "palyra_usage_unpriced_requests_total",
            "Answered requests whose model has no price (their cost is unknown).",
            ("model",),
        )
        self.budget_soft = Counter(
            "palyra_budget_soft_limit_total",
            "Requests let through past a budget's soft threshold, by scope kind and budget.",
            ("scope", "budget"),
        )
        self.ledger = CallbackGauge(
            "palyra_usage_ledger",
            "The usage ledger's queue: facts dropped since start (queue full), facts queued now.",
            ("state",),
        )
        self.shared_state = CallbackGauge(
            "palyra_shared_state_degraded",
            "1 while [storage] redis_url is set but Redis does not answer (state is per process "
            "until it does), 0 while state is shared on Redis; absent without redis_url.",
            (),
        )
        # Concurrency limits (max_concurrency, max_concurrency_per_credential), per limit:
        # "provider" or "provider/credential". Only configured limits appear.
        self.limit_in_use = CallbackGauge(
            "palyra_concurrency_in_use",
            "Upstream calls holding a slot of a configured concurrency limit.",
            ("limit",),
        )
        self.limit_waiting = CallbackGauge(
            "palyra_concurrency_waiting",
            "Requests queued now because a configured concurrency limit is reached.",
            ("limit",),
        )
        self.limit_waits = CallbackCounter(
            "palyra_concurrency_waits_total",
            "Requests that queued for a slot of a configured concurrency limit.",
            ("limit",),
        )
        self.limit_wait_seconds = CallbackCounter(
            "palyra_concurrency_wait_seconds_total",
            "Seconds requests spent queued for a slot of a configured concurrency limit.",
            ("limit",),
        )
        self.limit_refusals = CallbackCounter(
            "palyra_concurrency_refusals_total",
            "Requests refused because no slot of a concurrency limit freed within the deadline.",
            ("limit",),
        )

    def principal_label(self, token_id: str | None, agent_id: str | None) -> str:
        """Who a request is charged to, as a bounded label value: ``token:<id>``, else
        ``agent:<id>``, else ``none``; past ``MAX_PRINCIPAL_LABELS`` distinct ones, ``other``."""
        if token_id is not None:
            label = f"token:{token_id}"
        elif agent_id is not None:
            label = f"agent:{agent_id}"
        else:
            return "none"
        known = self._principal_labels
        if label in known:
            return label
        if len(known) >= MAX_PRINCIPAL_LABELS:
            return "other"
        known.add(label)
        return label

    def add_usage(
        self, fact: UsageFact, provider: str | None, upstream: str | None, cost: int | None
    ) -> None:
        """One ledger fact, as the ledger's writer prices it (off the request's path)."""
        usage = fact.usage
        trail = fact.trail
        if usage is None or trail is None or not trail.attempts:
            return
        model = trail.attempts[-1].model_id
        who = self.principal_label(fact.token_id, fact.agent_id)
        for kind, amount in (
            ("input", usage.input_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("cache_write", usage.cache_creation_input_tokens),
            ("output", usage.output_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if amount:
                self.usage_tokens.inc((model, who, kind), amount)
        if cost is None:
            self.unpriced.inc((model,))
        elif cost:
            self.usage_cost.inc((model, who), cost / 1e9)

    def set_ledger_source(self, figures: Callable[[], tuple[int, int]]) -> None:
        """The ledger hands over a callable returning (dropped, queued) facts."""

        def gauge() -> Mapping[Labels, float]:
            dropped, queued = figures()
            return {("dropped",): float(dropped), ("queued",): float(queued)}

        self.ledger.source = gauge

    def set_shared_state_source(self, degraded: Callable[[], bool]) -> None:
        """The shared-state link hands over a callable saying whether it is degraded now."""
        self.shared_state.source = lambda: {(): 1.0 if degraded() else 0.0}

    def set_breaker_source(self, phases: Callable[[], Mapping[str, str]]) -> None:
        """Routing hands over a callable returning ``{breaker scope: phase name}``."""

        def gauge() -> Mapping[Labels, float]:
            return {(scope,): BREAKER_VALUES.get(phase, -1.0) for scope, phase in phases().items()}

        self.breakers.source = gauge

    def set_limit_source(self, figures: Callable[[], Mapping[str, Any]]) -> None:
        """Routing hands over a callable returning ``{limit name: BucketFigures}``."""

        def read(field: str) -> GaugeSource:
            return lambda: {(name,): float(getattr(f, field)) for name, f in figures().items()}

        self.limit_in_use.source = read("active")
        self.limit_waiting.source = read("waiting")
        self.limit_waits.source = read("waits")
        self.limit_wait_seconds.source = read("wait_s")
        self.limit_refusals.source = read("refusals")

    def agent_label(self, agent_id: str) -> str:
        """The agent as a label value: ids beyond ``MAX_AGENT_LABELS`` distinct ones (tokens can
        name agents agents.toml no longer has) count as ``other``, so the label set stays bounded."""
        known = self._agent_labels
        if agent_id in known:
            return agent_id
        if len(known) >= MAX_AGENT_LABELS:
            return "other"
        known.add(agent_id)
        return agent_id

    def add_tokens(self, model: str, input_tokens: int, output_tokens: int) -> None:
        if input_tokens:
            self.tokens.inc((model, "input"), input_tokens)
        if output_tokens:
            self.tokens.inc((model, "output"), output_tokens)

    def _families(self) -> tuple[Counter | Histogram | CallbackGauge, ...]:
        """Every metric, in exposition order."""
        return (
            self.requests,
            self.latency,
            self.upstream_attempts,
            self.failovers,
            self.tokens,
            self.stream_interruptions,
            self.agent_requests,
            self.breakers,
            self.shared_state,
            self.limit_in_use,
            self.limit_waiting,
            self.limit_waits,
            self.limit_wait_seconds,
            self.limit_refusals,
            self.usage_tokens,
            self.usage_cost,
            self.unpriced,
            self.budget_soft,
            self.ledger,
        )

    def snapshot(self) -> Snapshot:
        """This registry's figures as JSON-ready data (for the sibling workers to merge)."""
        counters, histograms, gauges = {}, {}, {}
        for family in self._families():
            if isinstance(family, Counter):
                counters[family.name] = [[list(k), v] for k, v in sorted(family.read().items())]
            elif isinstance(family, Histogram):
                histograms[family.name] = [
                    [list(k), list(counts), family.sums[k]]
                    for k, counts in sorted(family.counts.items())
                ]
            else:
                gauges[family.name] = [[list(k), v] for k, v in sorted(family.read().items())]
        return {
            "worker": self.worker,
            "counters": counters,
            "histograms": histograms,
            "gauges": gauges,
        }

    def render(self) -> str:
        """The Prometheus text: this registry alone, or merged with ``peers`` when set."""
        if self.peers is None:
            lines = [line for family in self._families() for line in family.render()]
            return "\n".join(lines) + "\n"
        snapshots = [self.snapshot(), *self.peers()]
        counters, histograms = _add_up(snapshots)
        # Gauges differ per process: each is shown per worker, read from every snapshot.
        per_worker: dict[str, dict[str, dict[Labels, float]]] = {}
        for snap in snapshots:
            worker = snap.get("worker")
            if worker is None:
                continue
            for name, rows in snap.get("gauges", {}).items():
                into = per_worker.setdefault(name, {})
                into[str(worker)] = {tuple(labels): float(value) for labels, value in rows}
        lines = []
        for family in self._families():
            if isinstance(family, Counter):
                lines.extend(family.render(counters.get(family.name, {})))
            elif isinstance(family, Histogram):
                width = len(family.buckets) + 1
                figures = {
                    k: v for k, v in histograms.get(family.name, {}).items() if len(v[0]) == width
                }
                counts = {k: c for k, (c, _) in figures.items()}
                sums = {k: t for k, (_, t) in figures.items()}
                lines.extend(family.render(counts, sums))
            else:
                lines.extend(family.render(per_worker.get(family.name, {})))
        return "\n".join(lines) + "\n"


def _add_up(
    snapshots: Iterable[Snapshot],
) -> tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, tuple[list[int], float]]]]:
    counters: dict[str, dict[Labels, float]] = {}
    histograms: dict[str, dict[Labels, tuple[list[int], float]]] = {}
    for snap in snapshots:
        for name, rows in snap.get("counters", {}).items():
            into = counters.setdefault(name, {})
            for labels, value in rows:
                key = tuple(labels)
                into[key] = into.get(key, 0.0) + float(value)
        for name, rows in snap.get("histograms", {}).items():
            hinto = histograms.setdefault(name, {})
            for labels, counts, total in rows:
                key = tuple(labels)
                seen = hinto.get(key)
                if seen is None:
                    hinto[key] = ([int(c) for c in counts], float(total))
                elif len(seen[0]) == len(counts):  # same buckets: always, within one build
                    added = [a + int(b) for a, b in zip(seen[0], counts, strict=True)]
                    hinto[key] = (added, seen[1] + float(total))
    return counters, histograms


def merge_snapshots(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Counters and histograms of several snapshots added up, as one snapshot; gauges are left
    out (they only mean something per live process)."""
    counters, histograms = _add_up(snapshots)
    return {
        "counters": {
            name: [[list(k), v] for k, v in sorted(values.items())]
            for name, values in counters.items()
        },
        "histograms": {
            name: [[list(k), c, t] for k, (c, t) in sorted(values.items())]
            for name, values in histograms.items()
        },
    }
