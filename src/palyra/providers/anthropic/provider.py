"""``AnthropicProvider``: the HTTP shell around the pure Anthropic payload and parsers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Literal

import httpx2
import orjson

from palyra.model import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FailureClass,
    ModelInfo,
    PalyraError,
    ReasoningEffort,
    StreamEvent,
    TokenCount,
    TranscriptionRequest,
    TranscriptionResponse,
)
from palyra.model.forwarding import ANTHROPIC_CLIENT_HEADERS, forwarded
from palyra.model.known_secrets import remember_secret
from palyra.providers.anthropic.output_config import NO_OPTIONS, OutputOptions
from palyra.providers.anthropic.payload import (
    EFFORT_BUDGETS,
    build_anthropic_count_tokens_payload,
    build_anthropic_messages_payload,
)
from palyra.providers.anthropic.response import (
    load_json_object,
    parse_anthropic_message,
    parse_anthropic_models,
    parse_anthropic_token_count,
)
from palyra.providers.anthropic.stream import AnthropicStreamParser
from palyra.providers.base import Credential, ProviderCapabilities
from palyra.providers.errors import (
    StatusAndHeaders,
    classify_transport_error,
    raise_for_upstream_status,
)
from palyra.providers.upstream.client import (
    PreparedRequest,
    answer_headers_of,
    prepare,
    send_prepared,
)
from palyra.providers.upstream.limits import limits_of, why
from palyra.providers.upstream.sse import aiter_sse

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
MODELS_PAGE_LIMIT = 1000


class AnthropicProvider:
    """Anthropic Messages API (or a compatible server). ``base_url`` excludes ``/v1``."""

    kind: ClassVar[str] = "anthropic"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(count_tokens=True)

    def __init__(
        self,
        id: str,
        base_url: str,
        client: httpx2.AsyncClient,
        api_key: str | None = None,
        anthropic_version: str = DEFAULT_ANTHROPIC_VERSION,
        auth_scheme: Literal["x-api-key", "bearer"] = "x-api-key",
        default_max_tokens: int = 4096,
        headers: dict[str, str] | None = None,
        effort_budgets: Mapping[str, Mapping[ReasoningEffort, int]] | None = None,
    ) -> None:
        self.id = id
        self.base_url = (base_url or DEFAULT_ANTHROPIC_BASE_URL).rstrip("/")
        self._client = client
        self._max_event_bytes = limits_of(client).max_event_bytes
        self._api_key = api_key
        if api_key:
            remember_secret(api_key)
        self.anthropic_version = anthropic_version
        self.auth_scheme = auth_scheme
        self.default_max_tokens = default_max_tokens
        self._extra_headers = dict(headers or {})
        self._prepared: dict[tuple[str, str], PreparedRequest] = {}
        # Per upstream model, for models whose config sets reasoning_budgets.
        self.effort_budgets = dict(effort_budgets or {})
        # Per upstream model, for models whose config sets output_effort / structured_outputs.
        self.output_options: dict[str, OutputOptions] = {}
        # Client headers passed on beyond Anthropic's own (the provider's forward_headers).
        self.forward_headers: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"AnthropicProvider(id={self.id!r}, base_url={self.base_url!r})"

    def _headers(self, credential: Credential | None) -> dict[str, str]:
        return {**self._fixed_headers(), **self._auth(credential)}

    def _fixed_headers(self) -> dict[str, str]:
        return {
            "anthropic-version": self.anthropic_version,
            "content-type": "application/json",
            "accept": "application/json",
            **self._extra_headers,
        }

    def _auth(self, credential: Credential | None) -> dict[str, str]:
        key = credential.secret if credential is not None else self._api_key
        if not key:
            return {}
        if self.auth_scheme == "bearer":
            return {"authorization": f"Bearer {key}"}
        return {"x-api-key": key}

    def _prepared_request(self, method: str, path: str) -> PreparedRequest:
        """``method path`` with every header but the credential, checked and encoded once."""
        prepared = self._prepared.get((method, path))
        if prepared is None:
            url = f"{self.base_url}{path}"
            prepared = prepare(self._client, method, url, self._fixed_headers())
            self._prepared[(method, path)] = prepared
        return prepared

    async def _request(
        self,
        method: str,
        path: str,
        credential: Credential | None,
        *,
        payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        model: str | None = None,
        call_headers: Mapping[str, str] | None = None,
        answer: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON answer; ``call_headers`` replace the bare credential, and ``answer`` (when
        given) receives the answer's headers a client reads."""
        content = orjson.dumps(payload) if payload is not None else None
        try:
            if params is None:  # the lean path: a URL, headers and bytes
                reply = await send_prepared(
                    self._client,
                    self._prepared_request(method, path),
                    self._auth(credential) if call_headers is None else call_headers,
                    content,
                )
                status: StatusAndHeaders = reply
                body = reply.body
                if answer is not None:
                    answer.update(reply.answer_headers)
            else:
                response = await self._client.request(
                    method,
                    f"{self.base_url}{path}",
                    content=content,
                    params=params,
                    headers=self._headers(credential),
                )
                status, body = response, await response.aread()
        except httpx2.TransportError as exc:
            raise PalyraError(classify_transport_error(exc, provider=self.id, model=model)) from exc
        raise_for_upstream_status(status, body, provider=self.id, model=model)
        return load_json_object(body, f"the answer to {method} {path}", provider=self.id)

    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        return build_anthropic_messages_payload(
            request,
            default_max_tokens=self.default_max_tokens,
            effort_budgets=self.effort_budgets.get(request.model, EFFORT_BUDGETS),
            output=self.output_options.get(request.model, NO_OPTIONS),
        )

    async def chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> ChatResponse:
        payload = self._payload(request)
        payload.pop("stream", None)
        answer: dict[str, str] = {}
        body = await self._request(
            "POST",
            "/v1/messages",
            credential,
            payload=payload,
            model=request.model,
            call_headers=self._call_headers(credential, request),
            answer=answer,
        )
        return parse_anthropic_message(body, provider=self.id, headers=answer)

    def _call_headers(self, credential: Credential | None, request: ChatRequest) -> dict[str, str]:
        """The credential, and the client's headers this provider passes on: ``anthropic-beta``,
        ``anthropic-version`` when it is not the configured one, and the allowlisted ones."""
        auth = self._auth(credential)
        sent = request.headers
        if sent:
            passed = forwarded(sent, ANTHROPIC_CLIENT_HEADERS, self.forward_headers)
            if passed.get("anthropic-version") == self.anthropic_version:
                del passed["anthropic-version"]  # the same: the prepared request has it
            auth.update(passed)
        return auth

    async def stream_chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Yields each event as its SSE event completes; nothing is buffered."""
        payload = self._payload(request)
        payload["stream"] = True
        headers = {
            **self._fixed_headers(),
            **self._call_headers(credential, request),
            "accept": "text/event-stream",
        }
        parser = AnthropicStreamParser(provider=self.id, model=request.model)
        try:
            async with self._client.stream(
                "POST",
                f"{self.base_url}/v1/messages",
                content=orjson.dumps(payload),
                headers=headers,
            ) as response:
                if not 200 <= response.status_code < 300:
                    raise_for_upstream_status(
                        response, await response.aread(), provider=self.id, model=request.model
                    )
                parser.headers = answer_headers_of(response)
                async for sse in aiter_sse(response.aiter_bytes(), self._max_event_bytes):
                    for event in parser.feed(sse.event, sse.data):
                        yield event
                parser.finish()
        except httpx2.TransportError as exc:
            if parser.started:
                raise PalyraError.of(
                    FailureClass.STREAM_INTERRUPTED,
                    f"{self.id}: the stream broke after it started ({why(exc)}); "
                    "the answer is incomplete",
                    provider=self.id,
                    model=request.model,
                ) from exc
            raise PalyraError(
                classify_transport_error(exc, provider=self.id, model=request.model)
            ) from exc

    async def list_models(self, *, credential: Credential | None = None) -> list[ModelInfo]:
        models: list[ModelInfo] = []
        params: dict[str, str | int] = {"limit": MODELS_PAGE_LIMIT}
        while True:
            body = await self._request("GET", "/v1/models", credential, params=params)
            page, after = parse_anthropic_models(body, provider=self.id)
            models.extend(page)
            if after is None or not page:
                return models
            params = {"limit": MODELS_PAGE_LIMIT, "after_id": after}

    async def count_tokens(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> TokenCount:
        body = await self._request(
            "POST",
            "/v1/messages/count_tokens",
            credential,
            payload=build_anthropic_count_tokens_payload(request),
            model=request.model,
        )
        return parse_anthropic_token_count(body, provider=self.id)

    async def embed(
        self, request: EmbeddingRequest, *, credential: Credential | None = None
    ) -> EmbeddingResponse:
        raise PalyraError.of(
            FailureClass.UNSUPPORTED_CAPABILITY,
            f'provider "{self.id}" (kind anthropic) has no embeddings API; route '
            f"{request.model!r} to an embeddings model on an openai or openai_compatible provider",
            provider=self.id,
            model=request.model,
        )

    async def transcribe(
        self, request: TranscriptionRequest, *, credential: Credential | None = None
    ) -> TranscriptionResponse:
        raise PalyraError.of(
            FailureClass.UNSUPPORTED_CAPABILITY,
            f'provider "{self.id}" (kind anthropic) has no transcription API; route '
            f"{request.model!r} to a transcription model (e.g. whisper) on an openai or "
            "openai_compatible provider",
            provider=self.id,
            model=request.model,
        )

    async def aclose(self) -> None:
        """The HTTP client is injected and shared; whoever created it closes it."""
