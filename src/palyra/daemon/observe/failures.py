"""The log line for a failure the daemon did not expect: where it happened, never what it said.

An exception's text and a full traceback can carry what the client sent (a validation error
quotes its input, a ``repr`` shows a message), so the daemon logs only the exception's class (and
the classes it was raised from), the request id and the code locations it passed through: enough
to find the bug in the source, nothing from the request.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import PurePath

MAX_FRAMES = 6
PALYRA_DIR = "palyra"


def exception_classes(exc: BaseException) -> str:
    """``TypeError`` or, with its causes, ``ValueError <- KeyError`` (the first is raised)."""
    names: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(names) < MAX_FRAMES:
        names.append(type(current).__qualname__)
        current = current.__cause__ or current.__context__
    return " <- ".join(names)


def code_locations(exc: BaseException) -> str:
    """Where ``exc`` was raised, then the innermost frames of Palyra's own code it passed
    through, innermost first: ``core.py:63 execute <- palyra/store/open.py:40 connect <- ...``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    shown = [f for f in frames if PALYRA_DIR in PurePath(f.filename).parts][-MAX_FRAMES:]
    if frames[-1] not in shown:
        shown.append(frames[-1])
    return " <- ".join(_frame(f) for f in reversed(shown))


def _frame(frame: traceback.FrameSummary) -> str:
    parts = PurePath(frame.filename).parts
    where = "/".join(parts[parts.index(PALYRA_DIR) :]) if PALYRA_DIR in parts else parts[-1]
    return f"{where}:{frame.lineno} {frame.name}"


def log_unexpected(
    logger: logging.Logger, exc: BaseException, what: str, request_id: object
) -> None:
    """One ERROR line for ``exc`` met while doing ``what`` (e.g. ``POST /v1/messages``)."""
    logger.error(
        "unexpected %s on %s (request id %s) at %s; the request's content is not logged",
        exception_classes(exc),
        what,
        request_id,
        code_locations(exc) or "an unknown place",
    )
