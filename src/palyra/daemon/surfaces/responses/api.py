"""The OpenAI Responses HTTP handlers: create (whole or SSE), retrieve, list input items and
delete.

A request is routed like a chat completion (``dispatch``: failover, breakers, leases, metrics
and usage are the same); what is Responses-only here is the chain (``previous_response_id``
rebuilt from the store) and storing the answer (``store``, true unless the client says false).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from palyra.daemon.security.policy import Principal
from palyra.daemon.server.json_response import JSONBytes
from palyra.daemon.state import AppState
from palyra.daemon.surfaces import dispatch
from palyra.daemon.surfaces.dispatch import upstream_headers
from palyra.daemon.surfaces.openai.chat_api import app_state, read_body
from palyra.daemon.surfaces.responses.item_list import input_resources, page
from palyra.daemon.surfaces.responses.request_format import (
    ResponsesCall,
    parse_responses_request,
)
from palyra.daemon.surfaces.responses.response_format import (
    RESPONSE_PREFIX,
    Skeleton,
    output_messages,
    response_object,
)
from palyra.daemon.surfaces.responses.stream_format import ResponseEventEncoder
from palyra.daemon.surfaces.wire_checks import invalid, load_json
from palyra.model import (
    ChatRequest,
    FailureClass,
    Message,
    MessageStart,
    PalyraError,
    check_chat_request,
)
from palyra.model.forwarding import client_headers
from palyra.providers.openai import OpenAIProvider
from palyra.providers.openai.responses_payload import input_items, passed_item
from palyra.routing.registry import Target, required_capabilities
from palyra.store.responses import ChainBroken, StoredResponse

JSON = "application/json"


def new_response_id() -> str:
    return RESPONSE_PREFIX + secrets.token_hex(24)


def _owner(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.owner


def _not_found(response_id: str, param: str | None = None) -> PalyraError:
    return PalyraError.of(
        FailureClass.NOT_FOUND,
        f"no stored response {response_id!r} for this token: it was never stored (store=false), "
        "was made with another token, was deleted, or is older than [responses] retention_days",
        param=param,
        code="response_not_found",
    )


def _responses_upstream(state: AppState, target: Target) -> bool:
    provider = state.runtime.providers.get(target.provider_id)
    return isinstance(provider, OpenAIProvider) and (
        target.upstream_model in provider.responses_models
    )


def _passed_kinds(messages: list[Message]) -> list[str]:
    """The types of the Responses items the conversation carries as sent (built-in tools')."""
    kinds: list[str] = []
    for message in messages:
        if message.extensions is not None:
            item = passed_item(message)
            if item is not None:
                kinds.append(str(item.get("type")))
    return kinds


def _refuse_unless_responses_upstream(
    state: AppState, call: ResponsesCall, neutral: ChatRequest
) -> None:
    """Fields only OpenAI's Responses API acts on (built-in tools, ``truncation``...) and the
    items of built-in tools go to a model it serves; with no such model among the candidates,
    a 400 naming them before any upstream call."""
    extensions = call.extensions.unmapped() if call.extensions is not None else None
    kinds = _passed_kinds(neutral.messages)
    if extensions is None and not kinds:
        return
    try:
        targets = state.router.registry.plan(neutral.model, required_capabilities(neutral)).targets
    except PalyraError:
        return  # the router reports unroutable requests with their trail
    if any(_responses_upstream(state, t) for t in targets):
        return
    where = f'no upstream of model "{call.model}" can run them'
    fix = 'or route to an openai model with api = "responses"'
    if call.builtin_tools:
        tools = ", ".join(sorted(set(call.builtin_tools)))
        raise invalid(
            f"tools: {tools} are built-in OpenAI tools, run by OpenAI's own Responses service; "
            f"{where}. Declare them as function tools that your code runs instead, {fix}",
            "tools",
        )
    if kinds:
        items = ", ".join(sorted(set(kinds)))
        place = call.passed_items[0][0] if call.passed_items else "previous_response_id"
        raise invalid(
            f"{place}: {items} items belong to OpenAI's built-in tools (or are kinds only its "
            f'Responses API reads); no upstream of model "{call.model}" can read them. Leave '
            f"them out of the input, {fix}",
            place,
        )
    assert extensions is not None
    names = ", ".join(extensions.fields)
    raise invalid(
        f"{names}: only OpenAI's Responses API acts on this; no upstream of model "
        f'"{call.model}" is one. Remove it, or route to an openai model with api = "responses"',
        next(iter(extensions.fields)),
    )


async def _history(state: AppState, call: ResponsesCall, owner: str) -> list[Message]:
    """The stored conversation ``previous_response_id`` continues, oldest turn first."""
    if call.previous_response_id is None:
        return []
    store = await state.response_store()
    try:
        turns = await store.chain(call.previous_response_id, owner)
    except ChainBroken as gone:
        raise _not_found(gone.missing, "previous_response_id") from None
    history: list[Message] = []
    for turn in turns:
        history += [Message.model_validate(m) for m in turn.input]
        history += output_messages(turn.response.get("output", []))
    return history


async def _save(
    state: AppState, call: ResponsesCall, owner: str, model_id: str, body: dict[str, object]
) -> None:
    store = await state.response_store()
    response_id = str(body["id"])
    await store.save(
        id=response_id,
        owner=owner,
        previous_id=call.previous_response_id,
        model=model_id,
        input=[m.model_dump(mode="json") for m in call.input],
        response=body,
        input_items=input_resources(call.raw_input, response_id.removeprefix(RESPONSE_PREFIX)),
    )


async def create_response(request: Request) -> Response:
    state = app_state(request)
    sent = client_headers(request.scope["headers"], state.forward_names)
    call = parse_responses_request(
        load_json(await read_body(request, state.config.daemon.max_body_bytes)), headers=sent
    )
    dispatch.resolve(request, state, call.model, "chat")
    owner = _owner(request)
    neutral = call.chat_request(await _history(state, call, owner))
    _refuse_unless_responses_upstream(state, call, neutral)
    check_chat_request(neutral, state.limits)
    dispatch.check_window(state, neutral)
    created = int(state.clock())
    response_id = new_response_id()
    if not neutral.stream:
        answer, model_id = await dispatch.chat(request, state, neutral)
        skeleton = Skeleton(response_id, answer.model, created, call.echo)
        whole = response_object(skeleton, answer, completed_at=int(state.clock()))
        if call.store:
            await _save(state, call, owner, model_id, whole)
        return JSONBytes(orjson.dumps(whole), {**answer.headers, "x-palyra-model": model_id})
    opened = await dispatch.open_stream(request, state, neutral)
    first = opened.first
    model = (
        first.model
        if isinstance(first, MessageStart)
        else state.router.registry.resolve(opened.model_id).upstream_model
    )
    encoder = ResponseEventEncoder(Skeleton(response_id, model, created, call.echo))
    ended = False

    def finish() -> bytes:
        nonlocal ended
        ended = True
        return b""

    frames = dispatch.sse_body(request, opened, encoder.encode, finish, encoder.error)

    async def body() -> AsyncIterator[bytes]:
        async for frame in frames:
            if frame:
                yield frame
        if ended:
            closing = encoder.finish(int(state.clock()))
            if call.store and encoder.final is not None:
                try:
                    await _save(state, call, owner, opened.model_id, encoder.final)
                except PalyraError as exc:  # the client asked for it stored: say it was not
                    yield encoder.error(exc.envelope)
                    return
            yield closing

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={
            **upstream_headers(first),
            "x-palyra-model": opened.model_id,
            "cache-control": "no-cache",
        },
    )


async def get_response(request: Request) -> Response:
    """``GET /v1/responses/{response_id}``: the stored Response object, for its owner only."""
    state = app_state(request)
    response_id = request.path_params["response_id"]
    found = await (await state.response_store()).get(response_id, _owner(request))
    if found is None:
        raise _not_found(response_id)
    return JSONBytes(orjson.dumps(found.response), {})


def _turn_items(turn: StoredResponse) -> list[dict[str, Any]]:
    """A stored turn's input items as sent (rows from before they were kept: rebuilt from the
    neutral messages, as a Responses upstream would get them)."""
    if turn.input_items is not None:
        return turn.input_items
    messages = [Message.model_validate(m) for m in turn.input]
    return input_resources(input_items(messages), turn.id.removeprefix(RESPONSE_PREFIX))


async def list_input_items(request: Request) -> Response:
    """``GET /v1/responses/{response_id}/input_items``: the items the stored response was made
    from (its chain's inputs and outputs, then its own input), paged; its owner only."""
    state = app_state(request)
    response_id = request.path_params["response_id"]
    query = request.query_params
    include = query.getlist("include") + query.getlist("include[]")
    store = await state.response_store()
    try:
        turns = await store.chain(response_id, _owner(request), partial=True)
    except ChainBroken:
        raise _not_found(response_id) from None
    items: list[dict[str, Any]] = []
    for turn in turns[:-1]:
        items += _turn_items(turn)
        items += [i for i in turn.response.get("output", []) if isinstance(i, dict)]
    items += _turn_items(turns[-1])
    return JSONBytes(orjson.dumps(page(items, query, include)), {})


async def delete_response(request: Request) -> Response:
    """``DELETE /v1/responses/{response_id}``: forget a stored response (its owner only)."""
    state = app_state(request)
    response_id = request.path_params["response_id"]
    if not await (await state.response_store()).delete(response_id, _owner(request)):
        raise _not_found(response_id)
    body = {"id": response_id, "object": "response", "deleted": True}
    return JSONBytes(orjson.dumps(body), {})
