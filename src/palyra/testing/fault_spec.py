"""``KIND[:key=value,...]``: one queued :class:`Fault` written as text, for ``palyra fake-upstream
--fault``, so a fake run as a separate process can inject every fault the Python API can."""

from __future__ import annotations

import math

from palyra.testing.faults import Fault, FaultKind

MAX_TIMES = 10_000
"""How many copies of one fault ``times=N`` may queue (each copy is consumed by one request)."""

PARAMS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.SERVER_ERROR: ("status",),
    FaultKind.RATE_LIMIT: ("retry_after_s",),
    FaultKind.SLOW_FIRST_BYTE: ("delay_ms",),
    FaultKind.HANG: (),
    FaultKind.CONNECTION_RESET: (),
    FaultKind.STREAM_CUT: ("after_chunks",),
    FaultKind.MALFORMED_SSE: ("after_chunks",),
    FaultKind.MALFORMED_JSON: (),
    FaultKind.CONTEXT_LENGTH: (),
    FaultKind.INVALID_KEY: (),
    FaultKind.ECHO_KEY: ("after_chunks",),
    FaultKind.OVERSIZED: ("size_bytes", "after_chunks"),
}
"""The :class:`Fault` fields each kind reads, beyond the filters every kind takes."""

FILTERS = ("model", "path")
_CONVERT = {
    "status": int,
    "after_chunks": int,
    "size_bytes": int,
    "retry_after_s": float,
    "delay_ms": float,
}


class FaultSpecError(ValueError):
    """A ``--fault`` value that cannot be turned into faults; the message says why and how."""


def describe_kinds() -> str:
    """Every kind with the keys it takes, e.g. ``stream_cut (after_chunks)``, for ``--help``."""
    return ", ".join(
        f"{kind.value} ({', '.join(PARAMS[kind])})" if PARAMS[kind] else kind.value
        for kind in FaultKind
    )


def parse_fault_spec(text: str) -> list[Fault]:
    """``stream_cut:after_chunks=3,model=gpt-4o-mini,times=2`` -> two equal faults, in order.

    Kinds may use ``-`` for ``_``. ``times`` (default 1) queues that many copies.
    """
    name, _, rest = text.strip().partition(":")
    kind_name = name.strip().lower().replace("-", "_")
    try:
        kind = FaultKind(kind_name)
    except ValueError:
        raise FaultSpecError(
            f"--fault {text!r}: unknown fault {name!r}; use one of: "
            + ", ".join(k.value for k in FaultKind)
        ) from None
    allowed = (*PARAMS[kind], *FILTERS, "times")
    values: dict[str, object] = {}
    times = 1
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FaultSpecError(f"--fault {text!r}: {item!r} is not key=value")
        if key not in allowed:
            raise FaultSpecError(
                f"--fault {text!r}: {kind.value} takes no {key!r}; it takes: {', '.join(allowed)}"
            )
        raw = raw.strip()
        try:
            if key == "times":
                times = int(raw)
            else:
                value = _CONVERT.get(key, str)(raw)
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(raw)
                values[key] = value
        except ValueError:
            number = (
                "a whole number"
                if key in ("times", "status", "after_chunks", "size_bytes")
                else "a number"
            )
            raise FaultSpecError(f"--fault {text!r}: {key} must be {number}, got {raw!r}") from None
    if not 1 <= times <= MAX_TIMES:
        raise FaultSpecError(f"--fault {text!r}: times must be 1..{MAX_TIMES}, got {times}")
    try:
        fault = Fault(kind, **values)  # type: ignore[arg-type]  # keys checked against PARAMS
    except ValueError as exc:
        raise FaultSpecError(f"--fault {text!r}: {exc}") from None
    return [fault] * times  # frozen, so one object may stand for every copy
