"""``OpenAIProvider``: the HTTP shell around the pure OpenAI payload builders and parsers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import httpx2
import orjson

from palyra.model import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ExtensionPart,
    FailureClass,
    ModelInfo,
    PalyraError,
    ReasoningEffort,
    Role,
    StreamEvent,
    TokenCount,
    TranscriptionRequest,
    TranscriptionResponse,
)
from palyra.model.forwarding import OPENAI_CLIENT_HEADERS, forwarded
from palyra.model.known_secrets import remember_secret
from palyra.model.reasoning import DEFAULT_EFFORT_BUDGETS
from palyra.providers.base import Credential, ProviderCapabilities
from palyra.providers.errors import classify_transport_error, raise_for_upstream_status
from palyra.providers.openai.payload import (
    build_openai_chat_payload,
    build_openai_embeddings_payload,
    build_openai_transcription_form,
)
from palyra.providers.openai.quirks import OpenAIQuirks
from palyra.providers.openai.response import (
    load_json_object,
    parse_openai_chat_response,
    parse_openai_embeddings_response,
    parse_openai_models,
)
from palyra.providers.openai.responses_payload import build_openai_responses_payload
from palyra.providers.openai.responses_response import parse_openai_responses_response
from palyra.providers.openai.responses_stream import OpenAIResponsesStreamParser
from palyra.providers.openai.stream import OpenAIStreamParser, is_whole_payload
from palyra.providers.openai.transcription import parse_openai_transcription
from palyra.providers.upstream.client import (
    PreparedRequest,
    answer_headers_of,
    prepare,
    send_bytes,
    send_prepared,
)
from palyra.providers.upstream.limits import limits_of, why
from palyra.providers.upstream.sse import SSEDecoder

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


def refuse_unreadable_blocks(request: ChatRequest) -> None:
    """A content block the Responses API has no place for (a block kept whole from a Chat
    Completions or Messages client: ``input_audio``, ``search_result``, ...) is a 400 naming it
    where the model would read it; in assistant history it is left out, as for Chat Completions."""
    for message in request.messages:
        if message.role is Role.ASSISTANT:
            continue
        for part in message.content:
            if isinstance(part, ExtensionPart):
                kind = part.block.get("type")
                raise PalyraError.of(
                    FailureClass.UNSUPPORTED_CAPABILITY,
                    f"messages: a content block of type {kind!r} from the {part.owner} API has "
                    "no counterpart in the OpenAI Responses API, and the model would answer "
                    f"without it; remove it, or route to a model of the {part.owner} API",
                    param="messages",
                    provider="openai",
                )


class OpenAIProvider:
    """OpenAI's REST API. ``base_url`` includes the version prefix (``.../v1``)."""

    kind: ClassVar[str] = "openai"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(
        embeddings=True, transcription=True, count_tokens=False
    )

    def __init__(
        self,
        id: str,
        base_url: str,
        client: httpx2.AsyncClient,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        quirks: OpenAIQuirks = OpenAIQuirks(),
        responses_models: frozenset[str] = frozenset(),
        effort_budgets: Mapping[str, Mapping[ReasoningEffort, int]] | None = None,
    ) -> None:
        self.id = id
        # Upstream model names configured with api = "responses": served by /responses.
        self.responses_models = responses_models
        self.base_url = (base_url or DEFAULT_OPENAI_BASE_URL).rstrip("/")
        self.quirks = quirks
        self._client = client
        self._max_event_bytes = limits_of(client).max_event_bytes
        self._api_key = api_key
        if api_key:
            remember_secret(api_key)
        self._extra_headers = dict(headers or {})
        self._prepared: dict[str, PreparedRequest] = {}
        # Per upstream model, for models whose config sets reasoning_budgets.
        self.effort_budgets = dict(effort_budgets or {})
        # Client headers passed on beyond OpenAI's own (the provider's forward_headers).
        self.forward_headers: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, base_url={self.base_url!r})"

    def _headers(self, credential: Credential | None, accept: str) -> dict[str, str]:
        headers = {"accept": accept, **self._extra_headers}
        headers.update(self._auth(credential))
        return headers

    def _auth(self, credential: Credential | None) -> dict[str, str]:
        key = credential.secret if credential is not None else self._api_key
        return {"authorization": f"Bearer {key}"} if key else {}

    async def _send(
        self,
        method: str,
        path: str,
        credential: Credential | None,
        *,
        model: str | None = None,
        accept: str = "application/json",
        content_type: str | None = None,
        **kwargs: Any,
    ) -> bytes:
        headers = self._headers(credential, accept)
        if content_type is not None:
            headers["content-type"] = content_type
        url = f"{self.base_url}{path}"
        try:
            if set(kwargs) <= {"content"}:  # bytes or nothing: the lean path
                reply = await send_bytes(self._client, method, url, headers, kwargs.get("content"))
                raise_for_upstream_status(reply, reply.body, provider=self.id, model=model)
                return reply.body
            response = await self._client.request(method, url, headers=headers, **kwargs)
            body = await response.aread()
        except httpx2.TransportError as exc:
            raise PalyraError(classify_transport_error(exc, provider=self.id, model=model)) from exc
        raise_for_upstream_status(response, body, provider=self.id, model=model)
        return body

    async def _post_json(
        self, path: str, payload: Mapping[str, Any], credential: Credential | None, model: str
    ) -> dict[str, Any]:
        answer, _ = await self._post_json_reply(path, payload, self._auth(credential), model)
        return answer

    async def _post_json_reply(
        self, path: str, payload: Mapping[str, Any], call_headers: Mapping[str, str], model: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The answer to a JSON POST and its headers a client reads."""
        content = orjson.dumps(payload)
        try:
            reply = await send_prepared(
                self._client, self._prepared_post(path), call_headers, content
            )
        except httpx2.TransportError as exc:
            raise PalyraError(classify_transport_error(exc, provider=self.id, model=model)) from exc
        raise_for_upstream_status(reply, reply.body, provider=self.id, model=model)
        answer = load_json_object(reply.body, f"the answer to POST {path}", provider=self.id)
        return answer, reply.answer_headers

    def _call_headers(self, credential: Credential | None, request: ChatRequest) -> dict[str, str]:
        """The credential, and the client's headers this provider passes on (only when the
        client sent any: a plain request builds nothing more)."""
        auth = self._auth(credential)
        sent = request.headers
        if sent:
            auth.update(forwarded(sent, self._vendor_headers, self.forward_headers))
        return auth

    @property
    def _vendor_headers(self) -> frozenset[str]:
        """OpenAI's client headers, less those the config sets (organization, project)."""
        configured = {name.lower() for name in self._extra_headers}
        return OPENAI_CLIENT_HEADERS - configured

    def _prepared_post(self, path: str) -> PreparedRequest:
        """A JSON POST to ``path`` with every header but the credential, checked and encoded
        once per path (the same headers :meth:`_send` would send, in another order)."""
        prepared = self._prepared.get(path)
        if prepared is None:
            headers = {
                "accept": "application/json",
                **self._extra_headers,
                "content-type": "application/json",
            }
            url = f"{self.base_url}{path}"
            prepared = self._prepared[path] = prepare(self._client, "POST", url, headers)
        return prepared

    def _payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        if request.stream != stream:
            request = request.model_copy(update={"stream": stream})
        budgets = self.effort_budgets.get(request.model, DEFAULT_EFFORT_BUDGETS)
        return build_openai_chat_payload(request, self.quirks, budgets)

    async def chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> ChatResponse:
        if request.model in self.responses_models:
            refuse_unreadable_blocks(request)
            payload = build_openai_responses_payload(request, stream=False)
            answer, headers = await self._post_json_reply(
                "/responses", payload, self._call_headers(credential, request), request.model
            )
            return parse_openai_responses_response(answer, provider=self.id, headers=headers)
        body, headers = await self._post_json_reply(
            "/chat/completions",
            self._payload(request, stream=False),
            self._call_headers(credential, request),
            request.model,
        )
        return parse_openai_chat_response(body, provider=self.id, headers=headers)

    async def stream_chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Yields each event as its SSE event completes; nothing is buffered.

        A last event without its closing blank line still counts when its payload is whole;
        one cut mid-payload means the upstream was cut off.
        """
        headers = {
            "accept": "text/event-stream",
            **self._extra_headers,
            **self._call_headers(credential, request),
            "content-type": "application/json",
        }
        parser: OpenAIStreamParser | OpenAIResponsesStreamParser
        if request.model in self.responses_models:
            refuse_unreadable_blocks(request)
            path = "/responses"
            payload = build_openai_responses_payload(request, stream=True)
            parser = OpenAIResponsesStreamParser(provider=self.id, model=request.model)
        else:
            path, payload = "/chat/completions", self._payload(request, stream=True)
            parser = OpenAIStreamParser(provider=self.id, model=request.model)
        try:
            async with self._client.stream(
                "POST", f"{self.base_url}{path}", content=orjson.dumps(payload), headers=headers
            ) as response:
                if not 200 <= response.status_code < 300:
                    raise_for_upstream_status(
                        response, await response.aread(), provider=self.id, model=request.model
                    )
                parser.headers = answer_headers_of(response)
                decoder = SSEDecoder(self._max_event_bytes)
                async for raw in response.aiter_bytes():
                    for sse in decoder.feed(raw):
                        for event in parser.feed(sse.data):
                            yield event
                    if parser.done:
                        return
                for sse in decoder.flush():
                    if not is_whole_payload(sse.data):
                        if parser.started:
                            raise self._interrupted(request, "in the middle of an event")
                        break  # nothing usable arrived: finish() reports the connection
                    for event in parser.feed(sse.data):
                        yield event
                for event in parser.finish():
                    yield event
        except httpx2.TransportError as exc:
            if parser.started:
                raise self._interrupted(request, f"({why(exc)})") from exc
            raise PalyraError(
                classify_transport_error(exc, provider=self.id, model=request.model)
            ) from exc

    def _interrupted(self, request: ChatRequest, how: str) -> PalyraError:
        return PalyraError.of(
            FailureClass.STREAM_INTERRUPTED,
            f"{self.id}: the stream broke after it started {how}; the answer is incomplete",
            provider=self.id,
            model=request.model,
        )

    async def embed(
        self, request: EmbeddingRequest, *, credential: Credential | None = None
    ) -> EmbeddingResponse:
        body = await self._post_json(
            "/embeddings", build_openai_embeddings_payload(request), credential, request.model
        )
        return parse_openai_embeddings_response(body, provider=self.id)

    async def transcribe(
        self, request: TranscriptionRequest, *, credential: Credential | None = None
    ) -> TranscriptionResponse:
        fields, files = build_openai_transcription_form(request)
        body = await self._send(
            "POST",
            "/audio/transcriptions",
            credential,
            model=request.model,
            accept="application/json, text/plain",
            data=fields,
            files=files,
        )
        return parse_openai_transcription(body, request.response_format, provider=self.id)

    async def list_models(self, *, credential: Credential | None = None) -> list[ModelInfo]:
        body = await self._send("GET", "/models", credential)
        data = load_json_object(body, "the answer to GET /models", provider=self.id)
        return parse_openai_models(data, provider=self.id)

    async def count_tokens(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> TokenCount:
        raise PalyraError.of(
            FailureClass.UNSUPPORTED_CAPABILITY,
            f'provider "{self.id}" (kind {self.kind}) has no token-counting API; estimate '
            f"{request.model!r} locally with palyra.providers.tokens instead",
            provider=self.id,
            model=request.model,
        )

    async def aclose(self) -> None:
        """The HTTP client is injected and shared; whoever created it closes it."""
