"""A job's schedule: a cron expression in a zone, a fixed interval, or one time; pure, time passed in.

Every kind answers the same question, ``next_after(t)``, in UTC, so the scheduler never needs to
know which kind it holds. Text forms (for the CLI and the API) are parsed here, with errors that
say what is wrong and how to write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from palyra.cron.matcher import CronExpressionError, CronMatcher, load_zone

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^(?:every\s+|@every\s+)?(\d+)\s*(s|m|h|d)$", re.IGNORECASE)
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 366 * 86400


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """Fire times of a cron expression, read in ``matcher.timezone``."""

    matcher: CronMatcher
    kind: Literal["cron"] = "cron"

    def next_after(self, after: datetime) -> datetime | None:
        return self.matcher.next_after(after)

    def describe(self) -> str:
        return f"cron {self.matcher.expression!r} in {self.matcher.timezone}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "cron",
            "expression": self.matcher.expression,
            "timezone": self.matcher.timezone,
        }


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Every ``every_s`` seconds from ``anchor``: fire times stay on the anchor's grid (no drift)."""

    every_s: int
    anchor: datetime
    kind: Literal["interval"] = "interval"

    def next_after(self, after: datetime) -> datetime | None:
        if after < self.anchor:
            return self.anchor
        steps = int((after - self.anchor).total_seconds() // self.every_s) + 1
        return self.anchor + timedelta(seconds=steps * self.every_s)

    def describe(self) -> str:
        return f"every {self.every_s}s from {self.anchor.isoformat()}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": "interval", "every_s": self.every_s, "anchor": self.anchor.isoformat()}


@dataclass(frozen=True, slots=True)
class OnceSchedule:
    """One fire time; after it, the job has no next run."""

    at: datetime
    kind: Literal["once"] = "once"

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if self.at > after else None

    def describe(self) -> str:
        return f"once at {self.at.isoformat()}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": "once", "at": self.at.isoformat()}


Schedule = CronSchedule | IntervalSchedule | OnceSchedule


def parse_schedule(text: str, *, timezone: str = "UTC", now: datetime) -> Schedule:
    """``*/5 * * * *`` / ``@daily`` (cron), ``every 90s`` (interval), ``at 2026-12-24T09:00`` (once).

    A one-time schedule in the past, and a cron expression that can never fire, are refused here,
    at creation, with the reason.
    """
    spec = " ".join(text.split())
    if not spec:
        raise CronExpressionError(
            "the schedule is empty (e.g. '0 9 * * MON-FRI', '@hourly', 'every 10m')"
        )
    interval = _INTERVAL.match(spec)
    if interval:
        seconds = int(interval.group(1)) * _UNITS[interval.group(2).lower()]
        if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
            raise CronExpressionError(
                f"interval {spec!r} must be between {MIN_INTERVAL_S}s and {MAX_INTERVAL_S // 86400}d"
            )
        return IntervalSchedule(seconds, now.astimezone(UTC) + timedelta(seconds=seconds))
    if spec.lower().startswith("at "):
        return OnceSchedule(parse_instant(spec[3:].strip(), timezone=timezone, now=now))
    return CronSchedule(CronMatcher.parse(spec, timezone))


def parse_instant(text: str, *, timezone: str, now: datetime) -> datetime:
    """An ISO 8601 time; without an offset it is read in ``timezone``. It must lie in the future."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CronExpressionError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-24T09:00 or 2026-12-24T09:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=load_zone(timezone))
    moment = moment.astimezone(UTC)
    if moment <= now:
        raise CronExpressionError(
            f"one-time schedule {text!r} is in the past ({moment.isoformat()} <= now {now.astimezone(UTC).isoformat()})"
        )
    return moment


def schedule_from_json(data: dict[str, Any]) -> Schedule:
    """The stored form back; the store holds what :meth:`to_json` wrote."""
    kind = data.get("kind")
    if kind == "cron":
        return CronSchedule(CronMatcher.parse(str(data["expression"]), str(data["timezone"])))
    if kind == "interval":
        return IntervalSchedule(int(data["every_s"]), datetime.fromisoformat(str(data["anchor"])))
    if kind == "once":
        return OnceSchedule(datetime.fromisoformat(str(data["at"])))
    raise CronExpressionError(f"stored schedule has an unknown kind {kind!r}")
