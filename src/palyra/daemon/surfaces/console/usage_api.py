"""``/console/v1/usage`` (the ledger's figures, grouped as ``palyra usage`` groups them) and
``PATCH /console/v1/tokens/{id}/limits`` (a client token's limits and budgets)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from palyra.config.schema import LimitSpec
from palyra.daemon.state import AppState
from palyra.daemon.surfaces.console.console_format import json_response
from palyra.daemon.surfaces.openapi_docs import error_responses
from palyra.model import FailureClass, PalyraError
from palyra.usage import group_problem, usage_report
from palyra.usage.since import parse_since

PREFIX = "/console/v1"


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.console.state
    return state


def _bad(message: str, param: str) -> PalyraError:
    return PalyraError.of(FailureClass.INVALID_REQUEST, message, param=param)


async def get_usage(request: Request, by: str = "", since: str = "", until: str = "") -> Response:
    """Totals per group (``by=token,model``; none: one total), this process's queue flushed
    first so every answered request counts."""
    state = _state(request)
    groups = [g.strip() for g in by.split(",") if g.strip()]
    problem = group_problem(groups)
    if problem is not None:
        raise _bad(problem, "by")
    now = state.clock()
    try:
        since_at = parse_since(since, now) if since else None
        until_at = parse_since(until, now) if until else None
    except ValueError as exc:
        raise _bad(str(exc), "since") from None
    store = await state.usage.ledger_store()
    if store is None:
        raise PalyraError.of(
            FailureClass.CONFIG,
            "this daemon keeps no usage ledger ([usage] ledger = false)",
            http_status=409,
        )
    ledger = state.usage.metering.ledger
    if ledger is not None:
        await ledger.flush()
    rows = await usage_report(
        store,
        groups,
        since_ms=None if since_at is None else int(since_at * 1000),
        until_ms=None if until_at is None else int(until_at * 1000),
    )
    return json_response({"by": groups, "data": [r.to_dict() for r in rows]})


def check_models(state: AppState, limits: LimitSpec) -> None:
    """Refuse an allowlist naming a model (or alias) this daemon does not have."""
    for name in limits.models or []:
        try:
            state.runtime.registry.resolve(name)
        except PalyraError:
            known = ", ".join(state.runtime.registry.model_ids)
            raise _bad(
                f'limits.models names "{name}", which is not a configured model or alias '
                f"(known: {known})",
                "models",
            ) from None


async def update_limits(request: Request, token_id: str, limits: LimitSpec) -> Response:
    """Replace a client token's limits (``{}`` lifts them); applies from the next request."""
    state = _state(request)
    tokens = state.auth.tokens
    if tokens is None:
        raise PalyraError.of(
            FailureClass.CONFIG,
            "this daemon has no token store (it runs with fixed tokens only); start it with a "
            "[storage] url and use: palyra token",
            http_status=409,
        )
    check_models(state, limits)
    record = await tokens.update_limits(token_id, limits)
    if record is None:
        raise PalyraError.of(
            FailureClass.NOT_FOUND,
            f"there is no daemon token {token_id!r}; see GET {PREFIX}/tokens",
        )
    state.auth.forget_all()
    return json_response(record.public_dict(tokens.now_ms()))


def mount_usage(app: FastAPI) -> None:
    app.add_api_route(
        f"{PREFIX}/usage",
        get_usage,
        methods=["GET"],
        responses=error_responses((400, 401, 409, 500)),
    )
    app.add_api_route(
        f"{PREFIX}/tokens/{{token_id}}/limits",
        update_limits,
        methods=["PATCH"],
        responses=error_responses((400, 401, 404, 409, 413, 500)),
    )
