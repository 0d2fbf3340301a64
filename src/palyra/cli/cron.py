"""``palyra cron``: scheduled agent runs — add, list, show, update, enable, disable, run-now,
delete, logs, explain.

The CLI writes the store directly, so it works whether or not the daemon runs; a running
daemon's scheduler picks changes up within a second. Input is checked by the same rules as the
console API (:mod:`palyra.cron.job_input`): a bad schedule names its field, an unknown agent,
auth profile or zone is named with what exists.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from palyra.cli.common import ConfigOpt, DbUrlOpt, fail, fail_on, read_config
from palyra.config.agents import agents_path, load_agents
from palyra.config.problems import ConfigError
from palyra.cron.explain import explain as explain_job
from palyra.cron.job_input import JobInput, JobInputError, Known
from palyra.cron.known import known_names, profile_scopes
from palyra.cron.records import JobRecord, RunRecord, iso
from palyra.cron.service import Conflict, CronService, NotFound
from palyra.cron.store import CronStore
from palyra.model import PalyraError
from palyra.model.context import Principal
from palyra.paths import state_dir
from palyra.store import open_store

T = TypeVar("T")
CLI_PRINCIPAL = Principal("local", "cli")

app = typer.Typer(
    help="Scheduled agent runs: jobs on cron expressions, intervals or one time.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _run(
    config: Path | None, db_url: str | None, action: Callable[[CronService], Awaitable[T]]
) -> T:
    cfg = read_config(config, "cron jobs")
    url = db_url or cfg.storage.url
    states = state_dir()

    async def go() -> T:
        store = await open_store(url, state_dir=states)
        try:
            cron = CronStore(store)
            await cron.ensure()

            async def known() -> Known:
                try:
                    agents = load_agents(agents_path(states), cfg)
                except ConfigError as exc:
                    raise JobInputError("agent", f"agents.toml is not valid:\n{exc}") from None
                return known_names([a.id for a in agents], await profile_scopes(store))

            service = CronService(cron, known, lambda: round(time.time() * 1000))
            return await action(service)
        finally:
            await store.aclose()

    try:
        return asyncio.run(go())
    except JobInputError as exc:
        fail(f"--{exc.field}: {exc.message}", 2)
    except (NotFound, Conflict) as exc:
        fail(str(exc))
    except PalyraError as exc:
        fail_on(exc)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _job_line(job: JobRecord) -> str:
    s = job.spec
    state = "enabled " if s.enabled else "disabled"
    return (
        f"{job.name:<24} {state} agent={s.agent_id:<12} next={iso(job.next_run_at_ms) or 'none'}"
        f"  {s.schedule.describe()}"
    )


def _job_text(job: JobRecord) -> list[str]:
    data = job.to_json()
    return [f"{key}: {value}" for key, value in data.items()]


def _run_line(run: RunRecord) -> str:
    tokens = (
        f" tokens={run.input_tokens}/{run.output_tokens}" if run.input_tokens is not None else ""
    )
    took = f" {run.duration_ms} ms" if run.duration_ms is not None else ""
    when = iso(run.scheduled_for_ms) or f"run-now@{iso(run.created_at_ms)}"
    why = f" ({run.reason})" if run.reason else ""
    cat = f" [{run.error_category}]" if run.error_category else ""
    return (
        f"{run.id} {when} #{run.attempt} {run.status.value}{why}{cat}{took}{tokens} "
        f"agent={run.agent_id} profile={run.auth_profile_id or '-'} by={run.principal}"
    )


Name = Annotated[str, typer.Argument(help="The job's name or id.")]
Schedule = Annotated[
    str | None,
    typer.Option(
        "--schedule",
        help="Cron (5 or 6 fields, '@daily'), 'every 10m', or 'at 2026-12-24T09:00'.",
    ),
]
Zone = Annotated[str | None, typer.Option("--tz", help="IANA zone of the schedule (default UTC).")]
Agent = Annotated[str | None, typer.Option("--agent", help="Agent id from agents.toml.")]
Prompt = Annotated[str | None, typer.Option("--prompt", help="What the agent is asked each run.")]
Profile = Annotated[
    str | None, typer.Option("--profile", help="Auth profile to use (default: the agent's).")
]
Overlap = Annotated[
    str | None, typer.Option("--overlap", help="skip | queue_one | replace | allow (default skip).")
]
Misfire = Annotated[
    str | None,
    typer.Option("--misfire", help="After downtime: skip | run_once | run_all (default run_once)."),
]
Retries = Annotated[int | None, typer.Option("--retries", help="Retries after a failure (0).")]
Backoff = Annotated[
    str | None, typer.Option("--backoff", help="Seconds before each retry, e.g. 30,120.")
]
Jitter = Annotated[float | None, typer.Option("--jitter", help="Random delay up to S seconds.")]
MaxRuntime = Annotated[
    float | None, typer.Option("--max-runtime", help="A run is stopped after S seconds (600).")
]
Webhook = Annotated[str | None, typer.Option("--webhook", help="POST each finished run here.")]
WebhookSecret = Annotated[
    str | None,
    typer.Option("--webhook-secret", help="Signing secret reference (vault:scope/name, env:NAME)."),
]


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="A unique job name.")],
    agent: Agent = None,
    schedule: Schedule = None,
    tz: Zone = None,
    prompt: Prompt = None,
    profile: Profile = None,
    overlap: Overlap = None,
    misfire: Misfire = None,
    retries: Retries = None,
    backoff: Backoff = None,
    jitter: Jitter = None,
    max_runtime: MaxRuntime = None,
    webhook: Webhook = None,
    webhook_secret: WebhookSecret = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Add a job; it first fires at the next matching time after now."""
    given = JobInput(
        name=name,
        agent_id=agent,
        schedule=schedule,
        timezone=tz,
        prompt=prompt,
        auth_profile_id=profile,
        enabled=not disabled,
        overlap=overlap,
        misfire=misfire,
        retries=retries,
        backoff=backoff,
        jitter_s=jitter,
        max_runtime_s=max_runtime,
        webhook_url=webhook,
        webhook_secret=webhook_secret,
    )
    job = _run(config, db_url, lambda s: s.add(given))
    if json_out:
        _echo_json(job.to_json())
    else:
        typer.echo(f"added {_job_line(job)}")


@app.command()
def update(
    name: Name,
    rename: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    agent: Agent = None,
    schedule: Schedule = None,
    tz: Zone = None,
    prompt: Prompt = None,
    profile: Profile = None,
    overlap: Overlap = None,
    misfire: Misfire = None,
    retries: Retries = None,
    backoff: Backoff = None,
    jitter: Jitter = None,
    max_runtime: MaxRuntime = None,
    webhook: Webhook = None,
    webhook_secret: WebhookSecret = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Change the given fields; a new schedule or zone counts from now."""
    given = JobInput(
        name=rename,
        agent_id=agent,
        schedule=schedule,
        timezone=tz,
        prompt=prompt,
        auth_profile_id=profile,
        overlap=overlap,
        misfire=misfire,
        retries=retries,
        backoff=backoff,
        jitter_s=jitter,
        max_runtime_s=max_runtime,
        webhook_url=webhook,
        webhook_secret=webhook_secret,
    )
    job = _run(config, db_url, lambda s: s.update(name, given))
    if json_out:
        _echo_json(job.to_json())
    else:
        typer.echo(f"updated {_job_line(job)}")


@app.command(name="list")
def list_jobs(json_out: JsonOpt = False, config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Every job with its next fire time (UTC)."""
    jobs = _run(config, db_url, lambda s: s.cron.list_jobs())
    if json_out:
        _echo_json([j.to_json() for j in jobs])
        return
    if not jobs:
        typer.echo("no cron jobs; add one with: palyra cron add NAME --agent ID --schedule EXPR")
    for job in jobs:
        typer.echo(_job_line(job))


@app.command()
def show(
    name: Name, json_out: JsonOpt = False, config: ConfigOpt = None, db_url: DbUrlOpt = None
) -> None:
    """One job's fields."""
    job = _run(config, db_url, lambda s: s.job(name))
    if json_out:
        _echo_json(job.to_json())
    else:
        typer.echo("\n".join(_job_text(job)))


@app.command()
def enable(name: Name, config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Enable a job; it next fires at the first matching time after now (no catch-up)."""
    job = _run(config, db_url, lambda s: s.set_enabled(name, True))
    typer.echo(f"enabled {_job_line(job)}")


@app.command()
def disable(name: Name, config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Disable a job; a run in progress finishes."""
    job = _run(config, db_url, lambda s: s.set_enabled(name, False))
    typer.echo(f"disabled {_job_line(job)}")


@app.command(name="run-now")
def run_now(name: Name, config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Queue an extra run now (also for a disabled job); the daemon's scheduler starts it."""
    run = _run(config, db_url, lambda s: s.run_now(name, CLI_PRINCIPAL))
    typer.echo(f"queued run {run.id}; follow it with: palyra cron logs {name}")


@app.command()
def delete(name: Name, config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Delete a job (its run history stays; open runs are cancelled)."""
    job = _run(config, db_url, lambda s: s.delete(name))
    typer.echo(f"deleted {job.name} ({job.id})")


@app.command()
def logs(
    name: Annotated[str | None, typer.Argument(help="A job (default: all runs).")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Show one run's events.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Recent runs (newest first) with status, reason, tokens and duration; --run for events."""

    async def read(s: CronService) -> dict[str, Any]:
        if run is not None:
            record = await s.run(run)
            events = await s.cron.events(run, limit=100_000)
            return {"run": record, "events": events}
        job_id = (await s.job(name)).id if name else None
        return {"runs": await s.cron.list_runs(job_id=job_id, limit=limit)}

    found = _run(config, db_url, read)
    if run is not None:
        record, events = found["run"], found["events"]
        if json_out:
            _echo_json({**record.to_json(), "events": [e.to_json() for e in events]})
            return
        typer.echo(_run_line(record))
        for e in events:
            body = {k: v for k, v in e.data.items()}
            typer.echo(f"  {e.seq:>4} {iso(e.at_ms)} {e.type} {json.dumps(body)[:200]}")
        return
    runs: list[RunRecord] = found["runs"]
    if json_out:
        _echo_json([r.to_json() for r in runs])
        return
    if not runs:
        typer.echo("no runs yet")
    for r in runs:
        typer.echo(_run_line(r))


@app.command()
def explain(
    name: Name,
    count: Annotated[int, typer.Option("--count", min=1, max=100)] = 5,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """The next fire times in the job's zone, and what became of recent ones and why."""

    async def read(s: CronService) -> Any:
        job = await s.job(name)
        runs = await s.cron.list_runs(job_id=job.id, limit=200)
        return explain_job(job, runs, now_ms=s.clock_ms(), count=count)

    result = _run(config, db_url, read)
    if json_out:
        _echo_json(result.to_json())
    else:
        typer.echo("\n".join(result.lines()))
