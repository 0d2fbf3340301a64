"""Scheduled agent runs: when jobs fire (``CronMatcher``, schedules) and the policies around them."""

from palyra.cron.matcher import CronExpressionError, CronMatcher
from palyra.cron.schedule import (
    CronSchedule,
    IntervalSchedule,
    OnceSchedule,
    Schedule,
    parse_schedule,
    schedule_from_json,
)

__all__ = [
    "CronExpressionError",
    "CronMatcher",
    "CronSchedule",
    "IntervalSchedule",
    "OnceSchedule",
    "Schedule",
    "parse_schedule",
    "schedule_from_json",
]
