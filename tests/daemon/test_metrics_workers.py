"""Metrics shared by several workers: snapshots on real files, merged into one exposition."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from palyra.daemon.observe.metrics import Metrics
from palyra.daemon.server.workers import RETIRED, SnapshotFiles, make_run_dir
from palyra.routing.leases import BucketFigures

CHAT = ("/v1/chat/completions", "m", "200")


def worker_metrics(index: int, requests: int, seconds: float, phase: str) -> Metrics:
    metrics = Metrics()
    metrics.worker = index
    for _ in range(requests):
        metrics.requests.inc(CHAT)
        metrics.latency.observe(CHAT, seconds)
    metrics.set_breaker_source(lambda: {"target:p/m": phase})
    return metrics


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name not in found, f"duplicate sample {line}"
            found[name] = float(value)
    return found


def test_render_adds_up_counters_and_histograms_and_labels_gauges_by_worker() -> None:
    own = worker_metrics(0, requests=3, seconds=0.002, phase="closed")
    sibling = worker_metrics(1, requests=2, seconds=0.3, phase="open")
    retired = {"counters": {"palyra_requests_total": [[list(CHAT), 4.0]]}, "histograms": {}}
    own.peers = lambda: [sibling.snapshot(), retired]
    got = samples(own.render())
    labels = 'route="/v1/chat/completions",model="m",status="200"'
    assert got[f"palyra_requests_total{{{labels}}}"] == 9
    assert got[f"palyra_request_duration_seconds_count{{{labels}}}"] == 5
    assert got[f'palyra_request_duration_seconds_bucket{{{labels},le="0.005"}}'] == 3
    assert got[f'palyra_request_duration_seconds_bucket{{{labels},le="0.5"}}'] == 5
    assert abs(got[f"palyra_request_duration_seconds_sum{{{labels}}}"] - 0.606) < 1e-9
    assert got['palyra_breaker_state{scope="target:p/m",worker="0"}'] == 0
    assert got['palyra_breaker_state{scope="target:p/m",worker="1"}'] == 2
    assert not any(k.startswith("palyra_breaker_state") and "worker" not in k for k in got)


def test_one_worker_renders_as_before_without_a_worker_label() -> None:
    alone = worker_metrics(0, requests=2, seconds=0.01, phase="closed")
    alone.worker = None
    text = alone.render()
    assert 'palyra_breaker_state{scope="target:p/m"} 0' in text.splitlines()
    assert "worker=" not in text


def put(files: SnapshotFiles, metrics: Metrics, pid: int) -> None:
    """A worker's snapshot as worker ``pid`` would write it."""
    path = files.run_dir / f"worker-{metrics.worker}.json"
    path.write_bytes(orjson.dumps({**metrics.snapshot(), "pid": pid}))


def test_a_retired_worker_counts_exactly_once(tmp_path: Path) -> None:
    files = SnapshotFiles(make_run_dir(tmp_path))
    own = worker_metrics(0, requests=1, seconds=0.01, phase="closed")
    own.peers = lambda: files.peers(0)
    files.write(0, own.snapshot())  # its own file is never read back
    put(files, worker_metrics(1, requests=5, seconds=0.01, phase="closed"), pid=101)
    assert [p["worker"] for p in files.peers(0)] == [1]
    assert requests(own) == 6

    files.retire(1, 101)  # the parent reaped worker 1 (pid 101)
    assert not (files.run_dir / "worker-1.json").exists()
    assert orjson.loads((files.run_dir / RETIRED).read_bytes())["folded"] == [101]
    assert requests(own) == 6
    put(files, worker_metrics(1, requests=2, seconds=0.01, phase="closed"), pid=102)
    assert requests(own) == 8

    # Between writing the retired totals and removing the snapshot, the snapshot is skipped.
    put(files, worker_metrics(1, requests=5, seconds=0.01, phase="closed"), pid=101)
    assert requests(own) == 6
    files.retire(1, 101)
    files.retire(1, 101)  # a snapshot already folded (or none at all) changes nothing
    assert requests(own) == 6


def requests(metrics: Metrics) -> float:
    labels = 'route="/v1/chat/completions",model="m",status="200"'
    return samples(metrics.render())[f"palyra_requests_total{{{labels}}}"]


def test_run_dirs_of_parents_that_are_gone_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / "run" / "serve-999999999"
    stale.mkdir(parents=True)
    (stale / "worker-0.json").write_text("{}")
    run_dir = make_run_dir(tmp_path)
    assert not stale.exists()
    assert run_dir.name == f"serve-{os.getpid()}"
    assert run_dir.stat().st_mode & 0o777 == 0o700


def test_concurrency_queues_are_summed_and_their_gauges_kept_per_worker() -> None:
    def with_queue(index: int, waiting: int, waits: int, wait_s: float) -> Metrics:
        metrics = worker_metrics(index, requests=0, seconds=0.0, phase="closed")
        figures = {"p": BucketFigures(5, 5, waiting, waits, wait_s, 1)}
        metrics.set_limit_source(lambda: figures)
        return metrics

    own, sibling = with_queue(0, 2, 10, 1.5), with_queue(1, 0, 4, 0.5)
    own.peers = lambda: [sibling.snapshot()]
    got = samples(own.render())
    assert got['palyra_concurrency_waits_total{limit="p"}'] == 14
    assert got['palyra_concurrency_wait_seconds_total{limit="p"}'] == 2.0
    assert got['palyra_concurrency_refusals_total{limit="p"}'] == 2
    assert got['palyra_concurrency_waiting{limit="p",worker="0"}'] == 2
    assert got['palyra_concurrency_waiting{limit="p",worker="1"}'] == 0
    assert got['palyra_concurrency_in_use{limit="p",worker="1"}'] == 5
    assert got['palyra_breaker_state{scope="target:p/m",worker="1"}'] == 0
