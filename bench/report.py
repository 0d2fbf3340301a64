"""The bench's table and its verdict on the targets of issue 16, from the JSON figures."""

from __future__ import annotations

import math
from typing import Any

SLOW_S = 1.5
SIDES = ("direct", "palyra", "litellm")

# metric, label, unit, whether Palyra's figure is also shown as "added" to direct's
ROWS: list[tuple[str, str, str, bool]] = [
    ("latency_median_ms", "latency median, same format", "ms", True),
    ("latency_p99_ms", "latency p99, same format", "ms", True),
    ("translated_median_ms", "latency median, translated", "ms", True),
    ("translated_p99_ms", "latency p99, translated", "ms", True),
    ("ttft_kept_alive_ms", "first token, kept-alive", "ms", True),
    ("ttft_fresh_ms", "first token, fresh connection", "ms", True),
    ("stream_events", "SSE events per stream", "", False),
    ("rps_c32_wrk", "rq/s c=32 wrk", "", False),
    ("rps_c32_hey", "rq/s c=32 hey", "", False),
    ("rps_c128_wrk", "rq/s c=128 wrk", "", False),
    ("rps_c128_hey", "rq/s c=128 hey", "", False),
    ("cpu_us_c32_wrk", "gateway CPU per request, c=32 wrk", "us", False),
    ("cpu_us_c128_wrk", "gateway CPU per request, c=128 wrk", "us", False),
    ("streams500_success", "500 streams: success", "%", False),
    ("streams500_p50_s", "500 streams: p50", "s", False),
    ("streams500_p99_s", "500 streams: p99", "s", False),
    ("streams500_peak_rss_mb", "500 streams: peak RSS", "MB", False),
    ("streams500_cpu_ms_per_stream", "500 streams: gateway CPU per stream", "ms", False),
    ("streams2000_success", "2000 streams: success", "%", False),
    ("streams2000_p50_s", "2000 streams: p50", "s", False),
    ("streams2000_p99_s", "2000 streams: p99", "s", False),
    ("streams2000_peak_rss_mb", "2000 streams: peak RSS", "MB", False),
    ("streams2000_cpu_ms_per_stream", "2000 streams: gateway CPU per stream", "ms", False),
    ("idle_rss_per_worker_mb", "idle RSS, one worker", "MB", False),
    ("idle_pss_per_worker_mb", "idle PSS, one worker", "MB", False),
    ("soak_rss_early_mb", "soak RSS at 1/5 of the run", "MB", False),
    ("soak_rss_end_mb", "soak RSS at the end", "MB", False),
    ("cli_version_s", "palyra version", "s", False),
    ("cli_chat_first_byte_s", "palyra chat, first byte", "s", False),
]


def _get(figures: dict[str, dict[str, Any]], metric: str, side: str) -> float | None:
    value = figures.get(metric, {}).get(side)
    return float(value) if isinstance(value, (int, float)) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def summary(figures: dict[str, dict[str, Any]], workers: int) -> dict[str, Any]:
    """Ratios Palyra/direct and Palyra/LiteLLM per metric, and each target met or missed."""
    ratios: dict[str, dict[str, float | None]] = {}
    for metric in figures:
        palyra = _get(figures, metric, "palyra")
        ratios[metric] = {
            "palyra/direct": _ratio(palyra, _get(figures, metric, "direct")),
            "palyra/litellm": _ratio(palyra, _get(figures, metric, "litellm")),
        }

    def added(metric: str) -> float | None:
        palyra, direct = _get(figures, metric, "palyra"), _get(figures, metric, "direct")
        return None if palyra is None or direct is None else palyra - direct

    targets: list[dict[str, Any]] = []

    def target(name: str, value: float | None, limit: float, *, at_least: bool = False) -> None:
        met = value is not None and (value >= limit if at_least else value <= limit)
        targets.append({"target": name, "value": value, "limit": limit, "met": met})

    target("added latency median, same format (ms)", added("latency_median_ms"), 0.3)
    target("added latency p99, same format (ms)", added("latency_p99_ms"), 1.0)
    target("added latency median, translated (ms)", added("translated_median_ms"), 0.5)
    for suffix, share in (("", 0.4), (f"_{workers}w", 0.5)):
        if suffix and workers <= 1:
            continue
        for level in (32, 128):
            for tool in ("wrk", "hey"):
                metric = f"rps_c{level}_{tool}{suffix}"
                if metric not in figures:
                    continue
                who = f"{workers} workers" if suffix else "1 worker"
                target(
                    f"throughput c={level} {tool}, {who} (of direct)",
                    ratios[metric]["palyra/direct"],
                    share,
                    at_least=True,
                )
                errors = _get(figures, f"errors_c{level}_{tool}{suffix}", "palyra")
                target(f"errors c={level} {tool}, {who}", errors, 0)
    target("added first token, kept-alive (ms)", added("ttft_kept_alive_ms"), 0.5)
    target("added first token, fresh connection (ms)", added("ttft_fresh_ms"), 0.5)
    events = (_get(figures, "stream_events", "direct"), _get(figures, "stream_events", "palyra"))
    target("chunks out - chunks in", None if None in events else events[1] - events[0], 0)  # type: ignore[operator]
    for count in (500, 2000):
        if f"streams{count}_success" not in figures:
            continue
        target(
            f"{count} streams: success",
            _get(figures, f"streams{count}_success", "palyra"),
            1.0,
            at_least=True,
        )
        target(
            f"{count} streams: p99 (s)",
            _get(figures, f"streams{count}_p99_s", "palyra"),
            SLOW_S + 0.1,
        )
        target(
            f"{count} streams: peak RSS (MB)",
            _get(figures, f"streams{count}_peak_rss_mb", "palyra"),
            150,
        )
    target(
        "idle RSS per worker, 1 worker (MB)", _get(figures, "idle_rss_per_worker_mb", "palyra"), 90
    )
    if workers > 1:
        target(
            f"idle RSS per worker, {workers} workers (MB)",
            _get(figures, f"idle_rss_per_worker_mb_{workers}w", "palyra"),
            90,
        )
        # Pages the workers share (tables loaded before the fork) count in full in each one's
        # RSS; PSS splits them between the processes sharing them.
        target(
            f"idle PSS per worker, {workers} workers (MB)",
            _get(figures, f"idle_pss_per_worker_mb_{workers}w", "palyra"),
            90,
        )
    target("soak RSS growth", _get(figures, "soak_growth", "palyra"), 0.05)
    target("palyra version (s)", _get(figures, "cli_version_s", "palyra"), 0.3)
    return {"ratios": ratios, "targets": targets}


def _cell(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "—"
    if unit == "ms" or unit == "s":
        return f"{value:.3f} {unit}" if unit == "ms" else f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "%":
        return f"{value:.1%}"
    if unit == "us":
        return f"{value:.0f} µs"
    if value <= 1.0 and value != int(value):
        return f"{value:.1%}"
    return f"{value:,.0f}"


def table(data: dict[str, Any]) -> list[str]:
    """A Markdown table: each metric for direct, Palyra and LiteLLM, and the two ratios."""
    figures = data["figures"]
    ratios = data["summary"]["ratios"]
    lines = [
        "| | direct | Palyra | LiteLLM | Palyra/direct | Palyra/LiteLLM |",
        "|---|---|---|---|---|---|",
    ]
    for metric, label, unit, show_added in ROWS:
        if metric not in figures:
            continue
        cells = [_cell(_get(figures, metric, side), unit) for side in SIDES]
        palyra, direct = _get(figures, metric, "palyra"), _get(figures, metric, "direct")
        if show_added and palyra is not None and direct is not None:
            cells[1] += f" ({palyra - direct:+.3f})"
        pair = ratios.get(metric, {})
        shown = [
            f"{r:.2f}" if r is not None else "—"
            for r in (pair.get("palyra/direct"), pair.get("palyra/litellm"))
        ]
        lines.append(f"| {label} | " + " | ".join(cells + shown) + " |")
    for metric in sorted(figures):
        if metric.startswith("idle_") and metric.endswith("w") and "per_worker" in metric:
            value = _cell(_get(figures, metric, "palyra"), "MB")
            label = metric.removeprefix("idle_").replace("_per_worker_mb_", " per worker, ")
            label = label.replace("rss", "idle RSS").replace("pss", "idle PSS")
            lines.append(f"| {label.removesuffix('w')} workers | — | {value} | — | — | — |")
    for metric in sorted(figures):
        if metric.startswith("rps_") and metric.endswith("w"):
            cells = [_cell(_get(figures, metric, side), "") for side in ("direct", "palyra")]
            ratio = ratios[metric]["palyra/direct"]
            shown = f"{ratio:.2f}" if ratio is not None else "—"
            label = metric.removeprefix("rps_").replace("_", " ", 1).replace("_", ", ")
            lines.append(f"| rq/s {label} | {cells[0]} | {cells[1]} | — | {shown} | — |")
    return lines


def print_report(data: dict[str, Any]) -> None:
    machine = data["machine"]
    print()
    print(
        f"{machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, "
        f"{machine['system']}, {machine['date']}; load generator, upstreams and gateways share "
        "these cores: compare ratios, not absolute numbers, across machines."
    )
    print()
    for line in table(data):
        print(line)
    print()
    print("Targets:")
    for item in data["summary"]["targets"]:
        value = item["value"]
        shown = "—" if value is None else f"{value:.3f}"
        print(
            f"  {'met   ' if item['met'] else 'MISSED'} {item['target']}: {shown} "
            f"(limit {item['limit']:g})"
        )
    for note in data["notes"]:
        print(f"  note: {note}")
