"""What a user writes for a job (CLI flags, an API body) turned into a checked ``JobSpec``.

One place for every rule, so ``palyra cron`` and ``/console/v1/cron`` accept and refuse the same
things with the same words. Each refusal names the field at fault and how to write it. Pure: the
time and what exists (agents, auth profiles) are passed in.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

from palyra.cron.matcher import CronExpressionError, load_zone
from palyra.cron.policies import MisfirePolicy, OverlapPolicy, RetryPolicy
from palyra.cron.records import Delivery, JobSpec, to_ms
from palyra.cron.schedule import CronSchedule, Schedule, parse_schedule
from palyra.vault.errors import InvalidVaultRef
from palyra.vault.refs import VaultRef

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SECRET_REF = re.compile(r"^(env|vault|file):.+$")
MAX_PROMPT_CHARS = 100_000
MAX_JITTER_S = 3600.0
MAX_RUNTIME_S = 86_400.0
MAX_RETRIES = 19  # RetryPolicy allows 20 attempts in all

E = TypeVar("E", bound=StrEnum)


class JobInputError(ValueError):
    """A job field that cannot be used; ``field`` is its name as the CLI and API spell it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class JobInput:
    """Fields as given; ``None`` means "not given" (the default on add, unchanged on update)."""

    name: str | None = None
    agent_id: str | None = None
    schedule: str | None = None
    timezone: str | None = None
    prompt: str | None = None
    auth_profile_id: str | None = None
    enabled: bool | None = None
    overlap: str | None = None
    misfire: str | None = None
    catch_up_window_s: int | None = None
    max_catch_up: int | None = None
    retries: int | None = None
    backoff: str | Sequence[float] | None = None
    jitter_s: float | None = None
    max_runtime_s: float | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None


@dataclass(frozen=True, slots=True)
class Known:
    """What exists, for the names a job refers to."""

    agent_ids: Sequence[str]
    # (profile id) -> None when it exists and the agent may use it, else why not
    profile_problem: Callable[[str, str], str | None]


def _choice(enum: type[E], value: str, field: str) -> E:
    try:
        return enum(value.strip().lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(e.value for e in enum)
        raise JobInputError(field, f"{value!r} is not one of: {names}") from None


def parse_backoff(value: str | Sequence[float]) -> tuple[float, ...]:
    parts: Sequence[object] = value.split(",") if isinstance(value, str) else value
    try:
        delays = tuple(float(str(p).strip()) for p in parts)
    except ValueError:
        raise JobInputError(
            "backoff", f"{value!r} is not a list of seconds (e.g. 30,120,600)"
        ) from None
    if not delays or any(d < 0 or d != d or d > 86_400 for d in delays):
        raise JobInputError("backoff", "each delay must be 0..86400 seconds (e.g. 30,120,600)")
    return delays


def _schedule(text: str, timezone: str, now: datetime) -> Schedule:
    try:
        load_zone(timezone)
        return parse_schedule(text, timezone=timezone, now=now)
    except CronExpressionError as exc:
        if exc.field == "timezone":
            raise JobInputError("tz", str(exc)) from None
        where = f"schedule ({exc.field} field)" if exc.field else "schedule"
        raise JobInputError(where, str(exc)) from None


def _webhook(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobInputError("webhook", f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise JobInputError(
            "webhook", "the URL carries credentials; the signature secret is --webhook-secret"
        )
    return url


def build_spec(
    given: JobInput, *, now: datetime, known: Known, base: JobSpec | None = None
) -> JobSpec:
    """A new spec (``base`` None: ``name``, ``agent_id``, ``schedule``, ``prompt`` needed) or
    ``base`` with the given fields changed; every rule checked on the result."""
    if base is None:
        for field, value in (
            ("name", given.name),
            ("agent", given.agent_id),
            ("schedule", given.schedule),
            ("prompt", given.prompt),
        ):
            if value is None:
                raise JobInputError(field, "is required")
    name = given.name if given.name is not None else (base.name if base else "")
    if not NAME_PATTERN.match(name):
        raise JobInputError(
            "name", f"{name!r} must be 1-128 letters, digits, '.', '_' or '-', starting alnum"
        )
    agent_id = given.agent_id if given.agent_id is not None else (base.agent_id if base else "")
    if agent_id not in known.agent_ids:
        have = ", ".join(known.agent_ids) or "none (add one to agents.toml)"
        raise JobInputError("agent", f"no agent {agent_id!r} in agents.toml (agents: {have})")
    prompt = given.prompt if given.prompt is not None else (base.prompt if base else "")
    if not prompt.strip():
        raise JobInputError("prompt", "is empty; say what the agent should do")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise JobInputError(
            "prompt", f"is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}"
        )
    schedule: Schedule
    if given.schedule is not None or given.timezone is not None:
        old_text = _schedule_text(base.schedule) if base else None
        text = given.schedule if given.schedule is not None else old_text
        if text is None:
            raise JobInputError("schedule", "cannot change only the zone of a non-cron schedule")
        zone = given.timezone or (_zone_of(base.schedule) if base else None) or "UTC"
        schedule = _schedule(text, zone, now)
    else:
        assert base is not None
        schedule = base.schedule
    profile = (
        given.auth_profile_id
        if given.auth_profile_id is not None
        else (base.auth_profile_id if base else None)
    )
    profile = profile or None  # "" clears it
    if profile is not None:
        problem = known.profile_problem(profile, agent_id)
        if problem is not None:
            raise JobInputError("profile", problem)
    spec = base or JobSpec(name=name, prompt=prompt, agent_id=agent_id, schedule=schedule)
    retry = spec.retry
    if given.retries is not None or given.backoff is not None:
        retries = given.retries if given.retries is not None else retry.attempts - 1
        if not 0 <= retries <= MAX_RETRIES:
            raise JobInputError("retries", f"must be 0..{MAX_RETRIES}, got {retries}")
        backoff = parse_backoff(given.backoff) if given.backoff is not None else retry.backoff_s
        retry = RetryPolicy(attempts=retries + 1, backoff_s=backoff)
    jitter = given.jitter_s if given.jitter_s is not None else spec.jitter_s
    if not 0 <= jitter <= MAX_JITTER_S:
        raise JobInputError("jitter", f"must be 0..{MAX_JITTER_S:g} seconds, got {jitter:g}")
    runtime = given.max_runtime_s if given.max_runtime_s is not None else spec.max_runtime_s
    if not 0 < runtime <= MAX_RUNTIME_S:
        raise JobInputError(
            "max-runtime", f"must be above 0 and at most {MAX_RUNTIME_S:g} s, got {runtime:g}"
        )
    window = (
        given.catch_up_window_s if given.catch_up_window_s is not None else (spec.catch_up_window_s)
    )
    if not 0 <= window <= 7 * 86_400:
        raise JobInputError("catch-up-window", f"must be 0..604800 seconds, got {window}")
    max_catch_up = given.max_catch_up if given.max_catch_up is not None else spec.max_catch_up
    if not 0 <= max_catch_up <= 100:
        raise JobInputError("max-catch-up", f"must be 0..100, got {max_catch_up}")
    url = given.webhook_url if given.webhook_url is not None else spec.delivery.webhook_url
    url = _webhook(url) if url else None
    secret = (
        given.webhook_secret if given.webhook_secret is not None else spec.delivery.secret_ref
    ) or None
    if secret is not None and not SECRET_REF.match(secret):
        raise JobInputError(
            "webhook-secret",
            "must be a secret reference (vault:scope/name, env:NAME or file:/path), never the "
            "secret itself; store it with: palyra vault put",
        )
    if secret is not None and secret.startswith("vault:"):
        try:
            VaultRef.parse(secret)
        except InvalidVaultRef as exc:
            raise JobInputError("webhook-secret", str(exc)) from None
    if url and not secret:
        raise JobInputError("webhook-secret", "a webhook needs a signing secret reference")
    if secret and not url:
        secret = None
    return dataclasses.replace(
        spec,
        name=name,
        prompt=prompt,
        agent_id=agent_id,
        schedule=schedule,
        auth_profile_id=profile,
        enabled=given.enabled if given.enabled is not None else spec.enabled,
        overlap=_choice(OverlapPolicy, given.overlap, "overlap") if given.overlap else spec.overlap,
        misfire=_choice(MisfirePolicy, given.misfire, "misfire") if given.misfire else spec.misfire,
        catch_up_window_s=window,
        max_catch_up=max_catch_up,
        retry=retry,
        jitter_s=float(jitter),
        max_runtime_s=float(runtime),
        delivery=Delivery(url, secret),
    )


def _schedule_text(schedule: Schedule) -> str | None:
    return schedule.matcher.expression if isinstance(schedule, CronSchedule) else None


def _zone_of(schedule: Schedule) -> str | None:
    return schedule.matcher.timezone if isinstance(schedule, CronSchedule) else None


def first_run_ms(schedule: Schedule, now: datetime) -> int | None:
    """The next fire time strictly after ``now`` (a job added, enabled or re-scheduled now does
    not count the times before as missed)."""
    nxt = schedule.next_after(now)
    return to_ms(nxt) if nxt is not None else None
