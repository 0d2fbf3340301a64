from datetime import UTC, datetime, timedelta

import pytest

from palyra.cron import CronExpressionError, CronMatcher, parse_schedule
from palyra.cron.schedule import IntervalSchedule, OnceSchedule, schedule_from_json


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(expr: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    return CronMatcher.parse(expr, zone).times_between(start, end, limit=1000)


# --- DST: Debian cron semantics, in both named zones and on both changes ---------------------------
# Europe/Berlin 2026: spring forward 29 March 02:00 CET -> 03:00 CEST (01:00Z);
#                     fall back 25 October 03:00 CEST -> 02:00 CET (01:00Z).
# America/New_York 2026: spring forward 8 March 02:00 EST -> 03:00 EDT (07:00Z);
#                        fall back 1 November 02:00 EDT -> 01:00 EST (06:00Z).


def test_job_in_the_skipped_hour_runs_once_at_the_transition_berlin() -> None:
    times = fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12))
    # 28 March 02:30 CET is before the window; 29 March 02:30 does not exist -> 03:00 CEST = 01:00Z.
    assert times == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]


def test_job_in_the_repeated_hour_runs_once_berlin() -> None:
    times = fires("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    # 25 October 02:30 happens twice (00:30Z CEST, 01:30Z CET): it runs at the first only.
    assert times == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_job_at_0130_in_the_repeated_hour_runs_once_new_york() -> None:
    times = fires("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 2, 12))
    # 1 November 01:30 EDT = 05:30Z; 01:30 EST (06:30Z) is the repeat and does not run.
    assert times == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_job_at_0230_in_the_skipped_hour_new_york() -> None:
    times = fires("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 9, 12))
    # 8 March 02:30 does not exist: it runs at 03:00 EDT = 07:00Z.
    assert times == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]


def test_hourly_job_runs_every_real_hour_across_both_changes() -> None:
    spring = fires("0 * * * *", "Europe/Berlin", utc(2026, 3, 28, 22, 30), utc(2026, 3, 29, 3, 30))
    assert spring == [utc(2026, 3, 28, h) for h in (23,)] + [
        utc(2026, 3, 29, h) for h in (0, 1, 2, 3)
    ]
    autumn = fires(
        "0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3, 30)
    )
    assert autumn == [utc(2026, 10, 24, 23)] + [utc(2026, 10, 25, h) for h in (0, 1, 2, 3)]


def test_next_after_inside_the_repeated_hour_never_answers_the_past() -> None:
    matcher = CronMatcher.parse("30 1 * * *", "America/New_York")
    # 06:10Z is 01:10 EST: the 01:30 of that day already ran (05:30Z, as EDT).
    after = utc(2026, 11, 1, 6, 10)
    nxt = matcher.next_after(after)
    assert nxt is not None and nxt > after
    assert nxt == utc(2026, 11, 2, 6, 30)


def test_every_wall_time_in_a_year_of_berlin_runs_once_per_day() -> None:
    matcher = CronMatcher.parse("30 2 * * *", "Europe/Berlin")
    times = matcher.times_between(utc(2025, 12, 31, 12), utc(2026, 12, 31, 12), limit=400)
    days = [t.astimezone(matcher.zone).date() for t in times]
    assert len(days) == 365 and len(set(days)) == 365


# --- expressions ---------------------------------------------------------------------------------


def test_six_fields_fire_every_second_in_order() -> None:
    matcher = CronMatcher.parse("* * * * * *", "UTC")
    assert matcher.seconds_field
    start = utc(2026, 1, 1, 0, 0, 0)
    assert matcher.next_times(start, 3) == [start + timedelta(seconds=s) for s in (1, 2, 3)]


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", utc(2026, 1, 1, 1)),
        ("@daily", utc(2026, 1, 2)),
        ("@midnight", utc(2026, 1, 2)),
        ("@weekly", utc(2026, 1, 4)),  # the first Sunday
        ("@monthly", utc(2026, 2, 1)),
        ("@yearly", utc(2027, 1, 1)),
        ("@annually", utc(2027, 1, 1)),
    ],
)
def test_macros(macro: str, expected: datetime) -> None:
    assert CronMatcher.parse(macro).next_after(utc(2026, 1, 1, 0, 0, 1)) == expected


def test_month_and_day_names() -> None:
    matcher = CronMatcher.parse("0 9 * JAN,jul mon-fri", "UTC")
    assert matcher.next_after(utc(2026, 1, 2, 10)) == utc(2026, 1, 5, 9)  # Friday 10:00 -> Monday


@pytest.mark.parametrize(
    ("expr", "field", "words"),
    [
        ("0 25 * * *", "hour", "the hour field '25' is not valid"),
        ("61 * * * *", "minute", "the minute field '61'"),
        ("0 0 * 13 *", "month", "the month field '13'"),
        ("0 0 * * FUNDAY", "day-of-week", "day-of-week field 'FUNDAY'"),
        ("*/0 * * * * *", "second", "the second field '*/0'"),
    ],
)
def test_a_bad_field_is_named(expr: str, field: str, words: str) -> None:
    with pytest.raises(CronExpressionError) as info:
        CronMatcher.parse(expr)
    assert info.value.field == field
    assert words in str(info.value)


def test_february_30_is_refused_as_never_firing() -> None:
    with pytest.raises(
        CronExpressionError, match="never fires: day-of-month 30 does not occur in February"
    ):
        CronMatcher.parse("0 0 30 2 *")


def test_april_31_is_refused_as_never_firing() -> None:
    with pytest.raises(CronExpressionError, match="never fires"):
        CronMatcher.parse("0 0 31 APR *")


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("", "empty"),
        ("* * *", "has 3"),
        ("@reboot", "not a schedule"),
        ("@fortnightly", "unknown macro"),
    ],
)
def test_malformed_expressions(expr: str, words: str) -> None:
    with pytest.raises(CronExpressionError, match=words):
        CronMatcher.parse(expr)


def test_unknown_zone_suggests_a_real_one() -> None:
    with pytest.raises(CronExpressionError, match="Europe/Berlin") as info:
        CronMatcher.parse("0 9 * * *", "Europe/Berln")
    assert info.value.field == "timezone"


def test_explain_in_words() -> None:
    assert CronMatcher.parse("30 2 * * *").explain() == "At 02:30 every day"


# --- other schedule kinds ------------------------------------------------------------------------


def test_interval_stays_on_its_grid() -> None:
    now = utc(2026, 5, 1, 12)
    schedule = parse_schedule("every 90s", now=now)
    assert isinstance(schedule, IntervalSchedule)
    first = schedule.next_after(now)
    assert first == now + timedelta(seconds=90)
    # Asked late (a slow tick), the next time is still on the grid, not 90 s after the ask.
    assert schedule.next_after(now + timedelta(seconds=200)) == now + timedelta(seconds=270)


def test_one_shot_in_a_zone_and_in_the_past() -> None:
    now = utc(2026, 5, 1, 12)
    schedule = parse_schedule("at 2026-05-02T09:00", timezone="Europe/Berlin", now=now)
    assert isinstance(schedule, OnceSchedule)
    assert schedule.at == utc(2026, 5, 2, 7)
    assert schedule.next_after(utc(2026, 5, 2, 7)) is None
    with pytest.raises(CronExpressionError, match="in the past"):
        parse_schedule("at 2026-04-30T09:00", timezone="UTC", now=now)
    with pytest.raises(CronExpressionError, match="ISO 8601"):
        parse_schedule("at tomorrow", now=now)


def test_interval_bounds() -> None:
    now = utc(2026, 5, 1)
    with pytest.raises(CronExpressionError, match="between"):
        parse_schedule("every 0s", now=now)


def test_stored_form_round_trips() -> None:
    now = utc(2026, 5, 1)
    for text in ("30 2 * * *", "every 5m", "at 2026-06-01T00:00+00:00"):
        schedule = parse_schedule(text, timezone="America/New_York", now=now)
        assert schedule_from_json(schedule.to_json()) == schedule
