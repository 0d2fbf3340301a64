"""``/console/v1/cron/jobs`` and ``/console/v1/runs``: scheduled jobs and agent runs over HTTP.

Admin tokens only (the guard's rule for ``/console``). The handlers call the same
:class:`~palyra.cron.service.CronService` as ``palyra cron``, so both accept and refuse the same
input in the same words. Run events are followed as server-sent events read from the store, so
any worker can serve them whichever process executes the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from palyra.cron.explain import explain
from palyra.cron.job_input import JobInput, JobInputError
from palyra.cron.records import RunStatus
from palyra.cron.service import Conflict, CronService, NotFound
from palyra.daemon.cron_host import CronHost
from palyra.daemon.security.policy import Principal as TokenPrincipal
from palyra.daemon.surfaces.console.console_format import json_response
from palyra.daemon.surfaces.openapi_docs import error_responses
from palyra.model import FailureClass, PalyraError
from palyra.model.context import Principal

PREFIX = "/console/v1"
JOBS = f"{PREFIX}/cron/jobs"
RUNS = f"{PREFIX}/runs"
EVENT_POLL_S = 0.2
MAX_RUN_PAGE = 500
T = TypeVar("T")


def _host(request: Request) -> CronHost:
    host: CronHost = request.app.state.cron
    return host


async def _service(request: Request) -> CronService:
    return await _host(request).service()


def _principal(request: Request) -> Principal:
    token: TokenPrincipal = request.state.principal
    return Principal("admin_token", token.token_id or token.owner or "config")


def _call_error(exc: Exception) -> PalyraError:
    if isinstance(exc, JobInputError):
        return PalyraError.of(FailureClass.INVALID_REQUEST, str(exc), param=exc.field)
    if isinstance(exc, NotFound):
        return PalyraError.of(FailureClass.NOT_FOUND, str(exc))
    return PalyraError.of(FailureClass.INVALID_REQUEST, str(exc), http_status=409)


async def _guarded(work: Awaitable[T]) -> T:
    try:
        return await work
    except (JobInputError, NotFound, Conflict) as exc:
        raise _call_error(exc) from None


class JobBody(BaseModel):
    """A job's fields as ``palyra cron add`` takes them (``retries`` = attempts after the first)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    agent: str | None = None
    schedule: str | None = None
    tz: str | None = None
    prompt: str | None = None
    profile: str | None = None
    enabled: bool | None = None
    overlap: str | None = None
    misfire: str | None = None
    catch_up_window_s: int | None = None
    max_catch_up: int | None = None
    retries: int | None = None
    backoff_s: list[float] | None = Field(default=None, max_length=20)
    jitter_s: float | None = Field(default=None, allow_inf_nan=False)
    max_runtime_s: float | None = Field(default=None, allow_inf_nan=False)
    webhook_url: str | None = None
    webhook_secret_ref: str | None = None

    def to_input(self) -> JobInput:
        return JobInput(
            name=self.name,
            agent_id=self.agent,
            schedule=self.schedule,
            timezone=self.tz,
            prompt=self.prompt,
            auth_profile_id=self.profile,
            enabled=self.enabled,
            overlap=self.overlap,
            misfire=self.misfire,
            catch_up_window_s=self.catch_up_window_s,
            max_catch_up=self.max_catch_up,
            retries=self.retries,
            backoff=self.backoff_s,
            jitter_s=self.jitter_s,
            max_runtime_s=self.max_runtime_s,
            webhook_url=self.webhook_url,
            webhook_secret=self.webhook_secret_ref,
        )


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str
    prompt: str
    profile: str | None = None


async def list_jobs(request: Request) -> Response:
    service = await _service(request)
    return json_response({"data": [j.to_json() for j in await service.cron.list_jobs()]})


async def add_job(request: Request, body: JobBody) -> Response:
    job = await _guarded((await _service(request)).add(body.to_input()))
    return json_response(job.to_json(), status=201)


async def get_job(request: Request, job: str) -> Response:
    return json_response((await _guarded((await _service(request)).job(job))).to_json())


async def update_job(request: Request, job: str, body: JobBody) -> Response:
    updated = await _guarded((await _service(request)).update(job, body.to_input()))
    return json_response(updated.to_json())


async def delete_job(request: Request, job: str) -> Response:
    deleted = await _guarded((await _service(request)).delete(job))
    return json_response({"id": deleted.id, "name": deleted.name, "deleted": True})


async def enable_job(request: Request, job: str) -> Response:
    return json_response(
        (await _guarded((await _service(request)).set_enabled(job, True))).to_json()
    )


async def disable_job(request: Request, job: str) -> Response:
    updated = await _guarded((await _service(request)).set_enabled(job, False))
    return json_response(updated.to_json())


async def run_job_now(request: Request, job: str) -> Response:
    run = await _guarded((await _service(request)).run_now(job, _principal(request)))
    return json_response(run.to_json(), status=202)


async def explain_job(request: Request, job: str) -> Response:
    service = await _service(request)
    record = await _guarded(service.job(job))
    runs = await service.cron.list_runs(job_id=record.id, limit=200)
    return json_response(explain(record, runs, now_ms=service.clock_ms()).to_json())


def _statuses(status: str | None) -> list[RunStatus]:
    if not status:
        return []
    try:
        return [RunStatus(s.strip()) for s in status.split(",")]
    except ValueError:
        names = ", ".join(s.value for s in RunStatus)
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST,
            f"status {status!r}: use one or more of {names}",
            param="status",
        ) from None


async def list_runs(
    request: Request, job: str | None = None, status: str | None = None, limit: int = 50
) -> Response:
    if not 1 <= limit <= MAX_RUN_PAGE:
        raise PalyraError.of(
            FailureClass.INVALID_REQUEST, f"limit must be 1..{MAX_RUN_PAGE}", param="limit"
        )
    service = await _service(request)
    job_id = (await _guarded(service.job(job))).id if job else None
    runs = await service.cron.list_runs(job_id=job_id, statuses=_statuses(status), limit=limit)
    return json_response({"data": [r.to_json() for r in runs]})


async def start_run(request: Request, body: RunBody) -> Response:
    service = await _service(request)
    run = await _guarded(
        service.start_run(body.agent, body.prompt, _principal(request), body.profile)
    )
    return json_response(run.to_json(), status=202)


async def get_run(request: Request, run_id: str) -> Response:
    service = await _service(request)
    run = await _guarded(service.run(run_id))
    events = await service.cron.events(run_id, limit=10_000)
    return json_response({**run.to_json(), "events": [e.to_json() for e in events]})


async def cancel_run(request: Request, run_id: str) -> Response:
    run = await _guarded((await _service(request)).cancel(run_id))
    return json_response(run.to_json())


async def run_events(request: Request, run_id: str, after: int = -1) -> Response:
    """``text/event-stream`` of the run's stored events from ``after`` on, until it ends."""
    service = await _service(request)
    await _guarded(service.run(run_id))

    async def stream() -> AsyncIterator[bytes]:
        seq = after
        while True:
            run = await service.cron.get_run(run_id)
            events = await service.cron.events(run_id, after_seq=seq)
            for event in events:
                seq = event.seq
                yield _sse(event.type, event.to_json(), event.seq)
            if run is None or (run.status.finished and not events):
                final: dict[str, Any] = run.to_json() if run is not None else {"id": run_id}
                yield _sse("run_closed", final, None)
                return
            if not events:
                await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _sse(kind: str, data: dict[str, Any], seq: int | None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def mount_cron(app: FastAPI) -> None:
    """Add the cron and runs routes; ``app.state.cron`` (a CronHost) serves them."""
    ids, base = (400, 401, 404, 500), (400, 401, 500)
    routes: list[tuple[str, Callable[..., Awaitable[Response]], str, tuple[int, ...]]] = [
        (JOBS, list_jobs, "GET", base),
        (JOBS, add_job, "POST", (*base, 409, 413)),
        (f"{JOBS}/{{job}}", get_job, "GET", ids),
        (f"{JOBS}/{{job}}", update_job, "PATCH", (*ids, 409, 413)),
        (f"{JOBS}/{{job}}", delete_job, "DELETE", ids),
        (f"{JOBS}/{{job}}/enable", enable_job, "POST", (*ids, 409)),
        (f"{JOBS}/{{job}}/disable", disable_job, "POST", ids),
        (f"{JOBS}/{{job}}/run-now", run_job_now, "POST", ids),
        (f"{JOBS}/{{job}}/explain", explain_job, "GET", ids),
        (RUNS, list_runs, "GET", ids),
        (RUNS, start_run, "POST", (*base, 413)),
        (f"{RUNS}/{{run_id}}", get_run, "GET", ids),
        (f"{RUNS}/{{run_id}}/cancel", cancel_run, "POST", (*ids, 409)),
        (f"{RUNS}/{{run_id}}/events", run_events, "GET", ids),
    ]
    for path, endpoint, method, statuses in routes:
        app.add_api_route(path, endpoint, methods=[method], responses=error_responses(statuses))
