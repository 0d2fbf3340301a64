"""``CronMatcher``: when a cron expression fires, in the job's own time zone, with Debian cron's DST rules.

cronsim does the matching (it is the one library that behaves like Debian cron on both DST changes: a
fixed-time job in the skipped hour runs at the transition, one in the repeated hour runs once, and a
wildcard-hour job runs every real hour). This module adds what a scheduler needs around it: macros,
errors that name the field, refusal of expressions that can never fire, and answers in UTC.
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from cronsim import CronSim, CronSimError

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

FIVE_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
SIX_FIELDS = ("second", *FIVE_FIELDS)
FIELD_RANGES = {
    "second": "0-59",
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT",
}
MONTH_NAMES = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# How far ahead a first fire time is looked for before an expression is called one that never fires.
HORIZON_YEARS = 50


class CronExpressionError(ValueError):
    """A cron expression or time zone that cannot be used, with the field at fault when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def load_zone(name: str) -> tzinfo:
    """The IANA zone ``name``; a misspelt one is refused with the closest real names."""
    if name.upper() == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, sorted(_zone_names()), n=3, cutoff=0.6)
        hint = (
            f" (did you mean {', '.join(close)}?)"
            if close
            else " (an IANA name such as Europe/Berlin)"
        )
        raise CronExpressionError(f"unknown time zone {name!r}{hint}", field="timezone") from None


def normalize_expression(expression: str) -> str:
    """Macros expanded, white space folded; the fields are checked by :class:`CronMatcher`."""
    text = " ".join(expression.split())
    if not text:
        raise CronExpressionError("the cron expression is empty")
    if text.startswith("@"):
        lowered = text.lower()
        if lowered == "@reboot":
            raise CronExpressionError(
                "@reboot is not a schedule: a job runs at times, not at daemon start"
            )
        if lowered not in MACROS:
            known = ", ".join(sorted(MACROS))
            raise CronExpressionError(f"unknown macro {text!r} (known: {known})")
        return MACROS[lowered]
    count = len(text.split(" "))
    if count not in (5, 6):
        raise CronExpressionError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week) "
            f"or 6 with seconds first; {text!r} has {count}"
        )
    return text


def _field_error(text: str, exc: CronSimError) -> CronExpressionError:
    parts = text.split(" ")
    names = SIX_FIELDS if len(parts) == 6 else FIVE_FIELDS
    message = str(exc)
    for index, name in enumerate(names):
        if message == f"Bad {name}":
            value = parts[index]
            if name == "day-of-month" and _never_in_months(parts, names):
                return CronExpressionError(
                    f"{text!r} never fires: {_never_in_months(parts, names)}", field=name
                )
            return CronExpressionError(
                f"{text!r}: the {name} field {value!r} is not valid "
                f"(values {FIELD_RANGES[name]}; *, lists, ranges A-B and steps */N)",
                field=name,
            )
    return CronExpressionError(f"{text!r} is not a valid cron expression: {message}")


def _never_in_months(parts: list[str], names: tuple[str, ...]) -> str:
    """Why a day-of-month that parses alone can never meet its months (Feb 30), or ''."""
    dom = parts[names.index("day-of-month")]
    month = parts[names.index("month")]
    try:
        days = sorted(CronSim(f"0 0 {dom} * *", datetime(2000, 1, 1, tzinfo=UTC)).days)
        months = sorted(CronSim(f"0 0 1 {month} *", datetime(2000, 1, 1, tzinfo=UTC)).months)
    except CronSimError:
        return ""
    names_of = " or ".join(MONTH_NAMES[m] for m in months)
    return f"day-of-month {days[0]} does not occur in {names_of}"


@dataclass(frozen=True, slots=True)
class CronMatcher:
    """One validated cron expression in one zone; :meth:`next_after` answers in UTC."""

    expression: str
    timezone: str
    zone: tzinfo

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronMatcher:
        """Validate ``expression`` and ``timezone``; an expression that can never fire is refused."""
        zone = load_zone(timezone)
        text = normalize_expression(expression)
        try:
            CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise _field_error(text, exc) from None
        matcher = cls(text, timezone, zone)
        if matcher.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise CronExpressionError(
                f"{text!r} never fires: no time matches it in {HORIZON_YEARS} years"
            )
        return matcher

    @property
    def seconds_field(self) -> bool:
        """A 6-field expression (seconds first) can fire more than once a minute."""
        return len(self.expression.split(" ")) == 6

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), in UTC; None if there is none."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        local = after.astimezone(self.zone)
        try:
            sim = CronSim(self.expression, local)
            for candidate in sim:
                fire = candidate.astimezone(UTC)
                # Debian-cron fix-ups iterate wall time: after the first pass of a repeated hour,
                # the same wall time again would lie before ``after``. It already fired then.
                if fire > after:
                    return fire
        except (StopIteration, CronSimError):
            return None
        return None

    def next_times(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``after``, in UTC."""
        times: list[datetime] = []
        cursor = after
        while len(times) < count:
            fire = self.next_after(cursor)
            if fire is None:
                break
            times.append(fire)
            cursor = fire
        return times

    def times_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Fire times in (start, end], at most ``limit`` of them (the earliest)."""
        times: list[datetime] = []
        cursor = start
        while len(times) < limit:
            fire = self.next_after(cursor)
            if fire is None or fire > end:
                break
            times.append(fire)
            cursor = fire
        return times

    def explain(self) -> str:
        """The expression in words, as cronsim puts it (``At 02:30``)."""
        return CronSim(self.expression, datetime(2000, 1, 1, tzinfo=UTC)).explain()
