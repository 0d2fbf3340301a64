"""Several worker processes serving one listening socket (``[daemon] workers``, ``--workers``).

One Python process tops out at a few thousand proxied requests a second, so on a host with
more cores ``palyra serve`` can run N workers, the way many replicas run behind a load balancer.
The parent process loads and checks the config, does the one-time start-up work (client tokens,
store migrations, the vault key), binds the socket, then forks the workers and supervises them:

- Workers are forked (the ``fork`` start method), so they start in milliseconds and inherit the
  bound socket and the resolved tokens. The parent forks only while it is single-threaded with
  no event loop (:func:`start_worker` checks): its start-up work ran under ``asyncio.run``, which
  closed its loop and threads, and supervising is a plain blocking loop. Each worker then builds
  its own state (providers, pools, store connections) and runs uvicorn on uvloop and httptools.
- SIGTERM or SIGINT to the parent: every worker gets SIGTERM and drains (in-flight streams get
  ``shutdown_grace_s``); the parent exits 0 once all have stopped. A second signal is passed on
  as SIGINT, which makes uvicorn stop at once.
- A worker that dies unexpectedly is replaced in its slot (a warning names its exit code); when
  a slot keeps dying, its restarts back off up to 30 s. A worker whose app fails to start in the
  first round stops the daemon (exit 3), as a single process would.
- A worker whose parent is gone (even killed with SIGKILL) notices at once and drains.
- Once-per-host work runs in worker 0 only: the proactive OAuth refresher (see
  ``AppState.refresh_oauth``); on-demand refreshes happen in every worker.

Metrics: each worker publishes a snapshot of its registry to ``<run dir>/worker-<slot>.json``
(temp file + rename) about once a second when it changed, and on shutdown. ``/metrics`` on any
worker merges its live registry with its siblings' snapshots and with ``retired.json``, where the
parent adds up the final figures of every worker that exited, so counters never go backwards
when a worker is replaced. The run dir is ``<state dir>/run/serve-<parent pid>`` (0700); the
parent removes it when it stops, and removes those of parents that are gone at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import orjson

from palyra.daemon.observe.metrics import Metrics, Snapshot, merge_snapshots

log = logging.getLogger("palyra.daemon")

PUBLISH_INTERVAL_S = 1.0
# Restart delays for a slot whose workers keep dying; a worker that lived STABLE_AFTER_S resets it.
RESTART_BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 30.0
# After the drain deadline (shutdown_grace_s plus this) stragglers are killed.
STOP_MARGIN_S = 15.0
THREADS_GONE_TIMEOUT_S = 5.0
STARTUP_FAILURE = 3  # uvicorn's exit code when the app's start-up fails
RETIRED = "retired.json"
MAX_FOLDED_PIDS = 1000
_FORWARDED = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Who a worker is: its slot (0..count-1; a replacement takes the slot over), how many
    there are, where they share metrics, and how it learns that the parent is gone."""

    index: int
    count: int
    run_dir: Path
    parent_fd: int  # the read end of the parent link (see ParentLink)


def _snapshot_name(index: int) -> str:
    return f"worker-{index}.json"


def _write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("ignoring unreadable metrics snapshot %s: %s", path, exc)
        return None


class SnapshotFiles:
    """The metrics snapshots of one daemon's workers, in its run dir."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def write(self, index: int, snapshot: Snapshot) -> None:
        _write_atomic(self.run_dir / _snapshot_name(index), self.encode(snapshot))

    @staticmethod
    def encode(snapshot: Snapshot) -> bytes:
        return orjson.dumps({**snapshot, "pid": os.getpid()})

    def peers(self, own_index: int) -> list[Snapshot]:
        """The other workers' latest snapshots plus the retired workers' totals.

        Snapshots are listed before ``retired.json`` is read, and any whose pid the retired
        totals already hold is skipped, so a worker being retired right now counts exactly once.
        """
        own = _snapshot_name(own_index)
        found = []
        for path in sorted(self.run_dir.glob("worker-*.json")):
            if path.name != own:
                snapshot = _read_json(path)
                if isinstance(snapshot, dict):
                    found.append(snapshot)
        retired = _read_json(self.run_dir / RETIRED)
        if not isinstance(retired, dict):
            return found
        folded = set(retired.get("folded", ()))
        return [s for s in found if s.get("pid") not in folded] + [retired]

    def retire(self, index: int, pid: int) -> None:
        """Add the final figures of the exited worker ``pid`` in slot ``index`` to the retired
        totals, then remove its snapshot (parent only, after the worker was reaped)."""
        path = self.run_dir / _snapshot_name(index)
        snapshot = _read_json(path)
        if isinstance(snapshot, dict) and snapshot.get("pid") == pid:
            retired = _read_json(self.run_dir / RETIRED)
            if not isinstance(retired, dict):
                retired = {}
            folded = list(retired.get("folded", ()))
            if pid not in folded:
                merged = merge_snapshots([retired, snapshot])
                folded = [*folded, pid][-MAX_FOLDED_PIDS:]
                _write_atomic(self.run_dir / RETIRED, orjson.dumps({**merged, "folded": folded}))
        path.unlink(missing_ok=True)


def make_run_dir(state_dir: Path) -> Path:
    """``<state dir>/run/serve-<pid>``, created 0700; run dirs of parents that are gone are
    removed first (a parent killed with SIGKILL cannot clean up after itself)."""
    base = state_dir / "run"
    base.mkdir(mode=0o700, exist_ok=True)
    for old in base.glob("serve-*"):
        pid = old.name.removeprefix("serve-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    run_dir = base / f"serve-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(mode=0o700)
    return run_dir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


async def publish_metrics(metrics: Metrics, files: SnapshotFiles, index: int) -> None:
    """Write this worker's snapshot about once a second, only when it changed (until cancelled)."""
    last = b""
    while True:
        data = SnapshotFiles.encode(metrics.snapshot())
        if data != last:
            try:
                _write_atomic(files.run_dir / _snapshot_name(index), data)
                last = data
            except OSError as exc:
                log.warning("cannot write the metrics snapshot of worker %d: %s", index, exc)
        await asyncio.sleep(PUBLISH_INTERVAL_S)


class ParentLink:
    """A pipe whose write end only the parent holds (each worker closes its inherited copy
    first thing): when the parent ends, however it ends, the read end sees end-of-file."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class Stoppable(Protocol):
    should_exit: bool


async def watch_parent(parent_fd: int, server: Stoppable) -> None:
    """Drain the worker when its parent is gone (a parent killed outright cannot tell it)."""
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(parent_fd, readable)
    try:
        await gone
    finally:
        loop.remove_reader(parent_fd)
    log.warning("the palyra serve parent process is gone; this worker stops")
    server.should_exit = True


def start_worker(target: Callable[[], None], name: str, link: ParentLink) -> BaseProcess:
    """Fork a worker running ``target`` (which returns to exit 0); the parent must hold no
    other thread and no running event loop, or the child could inherit a lock held mid-way."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("cannot fork workers from inside a running event loop")
    _wait_single_threaded(THREADS_GONE_TIMEOUT_S)
    process = multiprocessing.get_context("fork").Process(
        target=_child, args=(target, link.write_fd), name=name, daemon=False
    )
    # Signals stay blocked across the fork, so none reaches the child before it has replaced
    # the parent's handlers; it unblocks them itself.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return process


def _wait_single_threaded(timeout_s: float) -> None:
    """Wait for threads that are finishing (a closed aiosqlite connection's thread ends a
    moment after ``close()`` returned); any still running after ``timeout_s`` is a bug."""
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        raise RuntimeError(f"cannot fork workers while other threads run: {', '.join(others)}")


class _StopRequest:
    """A worker's SIGTERM/SIGINT handler outside uvicorn's own (before the server listens for
    signals, and after): the request is remembered and handed to the server, never lost (a
    KeyboardInterrupt raised mid-start-up can land in a finaliser, which swallows it)."""

    def __init__(self) -> None:
        self.requested = False
        self.server: Stoppable | None = None

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True

    def attach(self, server: Stoppable) -> None:
        self.server = server
        if self.requested:
            server.should_exit = True


_stop_request = _StopRequest()


def stop_on_signal(server: Stoppable) -> None:
    """In a worker: make SIGTERM/SIGINT received before uvicorn installs its handlers stop
    ``server`` (it then starts, sees ``should_exit`` and shuts down at once)."""
    _stop_request.attach(server)


def _child(target: Callable[[], None], link_write_fd: int) -> None:
    os.close(link_write_fd)
    signal.set_wakeup_fd(-1)
    for sig in _FORWARDED:
        signal.signal(sig, _stop_request)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    with contextlib.suppress(KeyboardInterrupt):
        target()


@dataclass
class _Slot:
    index: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    generation: int = 0
    failures: int = 0  # deaths in a row without a stable run
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Start ``count`` workers with ``spawn(slot index)``, replace those that die, stop them all
    on SIGTERM/SIGINT. :meth:`run` returns the parent's exit code."""

    count: int
    spawn: Callable[[int], BaseProcess]
    files: SnapshotFiles
    shutdown_grace_s: float
    clock: Callable[[], float] = time.monotonic
    slots: list[_Slot] = field(init=False)
    _signals: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.slots = [_Slot(i) for i in range(self.count)]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            return self._loop(wake_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        slot.process = self.spawn(slot.index)
        slot.started_at = self.clock()

    def _loop(self, wake_r: int) -> int:
        exit_code = 0
        stopping_since: float | None = None
        for slot in self.slots:
            self._start(slot)
        while True:
            live = [s for s in self.slots if s.process is not None]
            if stopping_since is not None and not live:
                return exit_code
            timeout = self._timeout(stopping_since)
            waitables: list[Any] = [wake_r, *(s.process.sentinel for s in live if s.process)]
            multiprocessing.connection.wait(waitables, timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            if self._signals:
                sig = self._signals[-1]
                self._signals.clear()
                if stopping_since is None:
                    log.info("stopping %d workers (signal %s)", len(live), _signal_name(sig))
                    stopping_since = self.clock()
                    self._send(signal.SIGTERM)
                else:
                    log.warning("second signal: workers stop now, without draining")
                    self._send(signal.SIGINT)
            for slot in live:
                assert slot.process is not None
                if slot.process.is_alive():
                    continue
                code = self._reap(slot)
                if stopping_since is not None:
                    continue
                if code == STARTUP_FAILURE and slot.generation == 0:
                    log.error("worker %d failed to start; stopping palyra serve", slot.index)
                    exit_code = STARTUP_FAILURE
                    stopping_since = self.clock()
                    self._send(signal.SIGTERM)
                    continue
                self._schedule_restart(slot, code)
            now = self.clock()
            if stopping_since is None:
                for slot in self.slots:
                    if slot.restart_at is not None and now >= slot.restart_at:
                        slot.generation += 1
                        self._start(slot)
            elif now - stopping_since > self.shutdown_grace_s + STOP_MARGIN_S:
                stuck = [s.process for s in self.slots if s.process is not None]
                for process in stuck:
                    log.warning("worker pid %s did not stop in time; killing it", process.pid)
                    process.kill()
                for slot in self.slots:
                    if slot.process is not None:
                        self._reap(slot)

    def _timeout(self, stopping_since: float | None) -> float:
        now = self.clock()
        if stopping_since is not None:
            return max(0.0, stopping_since + self.shutdown_grace_s + STOP_MARGIN_S - now) + 0.01
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        return max(0.0, min(due) - now) if due else 3600.0

    def _send(self, sig: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, sig)
        for slot in self.slots:
            slot.restart_at = None

    def _reap(self, slot: _Slot) -> int:
        process = slot.process
        assert process is not None and process.pid is not None
        process.join()
        slot.process = None
        code = process.exitcode if process.exitcode is not None else -1
        try:
            self.files.retire(slot.index, process.pid)
        except OSError as exc:
            log.warning("cannot keep the metrics of worker %d: %s", slot.index, exc)
        process.close()
        return code

    def _schedule_restart(self, slot: _Slot, code: int) -> None:
        lived = self.clock() - slot.started_at
        slot.failures = 1 if lived >= STABLE_AFTER_S else slot.failures + 1
        delay = RESTART_BACKOFF_S[min(slot.failures, len(RESTART_BACKOFF_S)) - 1]
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        log.warning(
            "worker %d %s after %.1f s; restarting it%s",
            slot.index,
            how,
            lived,
            f" in {delay:g} s" if delay else "",
        )
        slot.restart_at = self.clock() + delay


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def remove_run_dir(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
