"""Daemon logging: text or one JSON object per line, with access-log fields kept structured.

Access lines carry their fields as ``extra={"access": {...}}`` so the JSON formatter emits them as
keys rather than parsing them back out of a message.

The access line is the one line per request, so it has a cheap path (:func:`log_access`): when
the daemon's own handler (:func:`configure_logging`) is the only handler the ``palyra.access``
logger reaches, the line is built straight from the fields (same text, same JSON) without a
``LogRecord``, with the timestamp's seconds formatted once per second, and held in the handler
for at most :data:`FLUSH_INTERVAL_S`. Every other record (any logger, any level) is written at
once, after the access lines held before it, so order is kept and a WARNING is never late.
Held lines are written by a timer on the running event loop, when a line finds the oldest held
one due, when the handler is flushed or closed (``logging.shutdown`` at exit), by
:func:`flush_logging` (``palyra serve`` on shutdown, workers included) and before a fork. A
process killed outright (SIGKILL) may lose the access lines of its last ~100 ms.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
import weakref
from asyncio import AbstractEventLoop
from asyncio.events import _get_running_loop
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, cast

import orjson

ACCESS_LOGGER = "palyra.access"
# HTTP client libraries that log one INFO line per request (~3% of CPU under load): the access
# line is the one line per request, so these speak only at WARNING and above.
QUIET_LOGGERS = ("httpx2", "httpcore2")
# Access lines are held at most this long (and at most MAX_HELD_LINES of them) before a write.
FLUSH_INTERVAL_S = 0.1
MAX_HELD_LINES = 1024
# The access message, as LogRecord.getMessage() renders it: method, path, status, duration_ms,
# model or "-", request_id.
ACCESS_FORMAT = "%s %s %s %.1fms model=%s id=%s"
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_access = logging.getLogger(ACCESS_LOGGER)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"ts","level","logger","msg", ...access fields}``; exceptions as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            line.update(access)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)


class DaemonLogHandler(logging.StreamHandler[TextIO]):
    """The daemon's one handler: records are written as ``StreamHandler`` writes them; access
    lines given to :meth:`emit_access` are held briefly and written in batches."""

    def __init__(self, stream: TextIO, formatter: TextFormatter | JsonFormatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self.own_formatter = formatter
        self.json = isinstance(formatter, JsonFormatter)
        self._held: list[str] = []
        self._held_since = 0.0
        self._timer_loop: AbstractEventLoop | None = None  # the loop a flush timer is set on
        self._stamp = (-1, "")  # a second and its formatted timestamp prefix
        # Handler.handle holds this lock around emit(); emit_access and flushes take it too.
        self._io_lock = cast("threading.RLock", self.lock)
        _live_handlers.add(self)

    def fast_path_ok(self) -> bool:
        """Whether an access line may skip the record machinery: this handler passes INFO,
        filters nothing and still formats with the formatter it was built with."""
        return (
            self.level <= logging.INFO and not self.filters and self.formatter is self.own_formatter
        )

    def emit(self, record: logging.LogRecord) -> None:
        """Write the held access lines, then this record, and flush (called under the lock)."""
        try:
            self._held.append(self.format(record) + self.terminator)
            self._write_held()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def emit_access(self, message: str, fields: dict[str, Any]) -> None:
        """Hold one access line (``message`` as the text line's message, ``fields`` as the JSON
        line's keys), exactly as the formatter would have rendered the record."""
        now = time.time()
        line = self._json_line(now, message, fields) if self.json else self._text_line(now, message)
        with self._io_lock:
            held = self._held
            held.append(line)
            if len(held) == 1:
                self._held_since = now
            try:
                if now - self._held_since >= FLUSH_INTERVAL_S or len(held) >= MAX_HELD_LINES:
                    self._write_held()
                    return
                loop = _get_running_loop()
                if loop is None:  # no loop to flush later: write now
                    self._write_held()
                elif self._timer_loop is not loop:
                    self._timer_loop = loop
                    loop.call_later(FLUSH_INTERVAL_S, self._timer_flush, loop)
            except Exception:
                _report_error()

    def _text_line(self, now: float, message: str) -> str:
        # Formatter.formatTime: strftime of converter(created), then ",%03d" of the msecs that
        # LogRecord computes as int((created - int(created)) * 1000).
        second = int(now)
        stamp = self._stamp
        if stamp[0] != second:
            formatter = self.own_formatter
            text = time.strftime(formatter.default_time_format, formatter.converter(second))
            stamp = self._stamp = (second, text)
        msecs = int((now - second) * 1000)
        return f"{stamp[1]},{msecs:03d} INFO {ACCESS_LOGGER}: {message}{self.terminator}"

    def _json_line(self, now: float, message: str, fields: dict[str, Any]) -> str:
        # datetime.fromtimestamp(now, UTC): seconds plus microseconds rounded half-even (which
        # can carry into the next second); the line shows milliseconds, truncated.
        second = int(now)
        micros = round((now - second) * 1e6)
        if micros >= 1_000_000:
            second += 1
            micros -= 1_000_000
        stamp = self._stamp
        if stamp[0] != second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            stamp = self._stamp = (second, text)
        line: dict[str, Any] = {
            "ts": f"{stamp[1]}{micros // 1000:03d}Z",
            "level": "info",
            "logger": ACCESS_LOGGER,
            "msg": message,
        }
        line.update(fields)
        return orjson.dumps(line, default=str).decode() + self.terminator

    def _write_held(self) -> None:
        """Write every held line in one write and flush the stream (caller holds the lock); the
        lines are let go first, so a failed write is reported once, not repeated."""
        held = self._held
        if held:
            data = "".join(held)
            held.clear()
            self.stream.write(data)
        self.stream.flush()

    def _timer_flush(self, loop: AbstractEventLoop) -> None:
        with self._io_lock:
            if self._timer_loop is loop:
                self._timer_loop = None
            try:
                if self._held:
                    self._write_held()
            except Exception:
                _report_error()

    def flush(self) -> None:
        with self._io_lock:
            if self.stream is not None and hasattr(self.stream, "flush"):
                self._write_held()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            super().close()


_live_handlers: weakref.WeakSet[DaemonLogHandler] = weakref.WeakSet()


def flush_logging() -> None:
    """Write the access lines every daemon handler still holds (call at shutdown; a forked
    worker exits without ``logging.shutdown``)."""
    for handler in list(_live_handlers):
        with contextlib.suppress(OSError, ValueError):  # a closed stream, as at shutdown
            handler.flush()


def _forget_held_lines() -> None:
    """In a forked child: the parent writes what it held (it flushed before the fork anyway),
    and a flush timer set on the parent's event loop does not run here."""
    for handler in list(_live_handlers):
        handler._held.clear()
        handler._timer_loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=flush_logging, after_in_child=_forget_held_lines)


def _report_error() -> None:
    """What ``Handler.handleError`` prints, for a failed write of held lines (no record)."""
    if logging.raiseExceptions and sys.stderr:
        try:
            sys.stderr.write("--- Logging error ---\n")
            traceback.print_exc(file=sys.stderr)
        except OSError:
            pass


def _sole_daemon_handler() -> DaemonLogHandler | None:
    """The daemon handler when it is the only handler an INFO access record would reach and
    nothing (filters, a disabled logger, another formatter) could make its line differ."""
    logger: logging.Logger | None = _access
    if _access.disabled or _access.filters:
        return None
    found: DaemonLogHandler | None = None
    while logger is not None:
        for handler in logger.handlers:
            if found is not None or type(handler) is not DaemonLogHandler:
                return None
            found = handler
        if not logger.propagate:
            break
        logger = logger.parent
    if found is None or not found.fast_path_ok():
        return None
    return found


def log_access(fields: dict[str, Any]) -> None:
    """Log one access line on ``palyra.access`` at INFO (the caller checked the level).

    ``fields`` holds ``request_id``, ``method``, ``path``, ``status``, ``duration_ms`` and
    ``model`` (plus optional keys); they become the JSON line's keys (``extra={"access": ...}``
    on the record path) and the text message ``ACCESS_FORMAT``.
    """
    handler = _sole_daemon_handler()
    model = fields["model"] or "-"
    if handler is None:
        _access.info(
            ACCESS_FORMAT,
            fields["method"],
            fields["path"],
            fields["status"],
            fields["duration_ms"],
            model,
            fields["request_id"],
            extra={"access": fields},
        )
        return
    message = (
        f"{fields['method']} {fields['path']} {fields['status']} {fields['duration_ms']:.1f}ms "
        f"model={model} id={fields['request_id']}"
    )
    handler.emit_access(message, fields)


def configure_logging(
    level: str, log_format: Literal["text", "json"], stream: TextIO | None = None
) -> logging.Handler:
    """Install one handler on the root logger (replacing earlier ones) and return it; the HTTP
    client loggers in ``QUIET_LOGGERS`` are held at WARNING whatever ``level`` is."""
    formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handler = DaemonLogHandler(stream or sys.stderr, formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, DaemonLogHandler):
            old.flush()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
