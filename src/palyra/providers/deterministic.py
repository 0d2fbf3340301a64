"""An offline provider whose every answer is derived from its input, for tests, demos and benchmarks.

Rules (all pure functions of the request, so the same request always gets the same answer):

* **Words.** The tokenizer is "runs of non-whitespace". Input tokens count the words of every text
  part, tool-call argument string and tool-result text in all messages, plus one per image; tool
  specs are not counted. Output tokens count the words of the reply plus, per tool call, the words
  of its name and of its argument string. Usage is reported with ``source="provider"``.
* **Tool calls.** When tools are offered, ``tool_choice`` is not ``"none"`` and the last message is
  a user message whose text says ``call <tool>`` or ``use <tool>`` (verb in any case, the name
  exactly as declared, optionally in backticks), the answer is one tool call per named tool in
  order of mention (only the first when ``parallel_tool_calls`` is false), with no text and finish
  reason ``tool_calls``. ``tool_choice="required"`` without a mention calls the first tool; a named
  ``tool_choice`` calls that tool. Arguments are filled from the tool's JSON schema (see *Schema
  filling*; strings get the user text left after removing trigger phrases and JSON objects, or the
  property name when nothing is left); every ``{...}`` JSON object in the text that parses
  overrides them key by key (only keys the schema declares, or all keys when it declares none).
* **Tool results.** When the last message is a tool message, the reply quotes every tool result
  after the last assistant message, one line each: ``Tool <name> returned: <content>`` (or
  ``failed:`` when the result is an error).
* **Text.** Otherwise the reply is ``You said: <text of the last user message>`` (``You said
  nothing.`` when it has no text). Images in that message are described on a second line:
  ``[2 images: image/png, 68 bytes; https://host/cat.jpg]``.
* **JSON modes.** ``json_object`` wraps the reply as ``{"reply": <reply>}``. ``json_schema`` returns
  the schema filled in, strings getting the reply.
* **Schema filling.** ``const`` then the first ``enum`` value win; then by ``type`` (the first
  non-null one when it is a list): string -> the text above, integer -> the word count of the last
  user message, number -> that count as a float, boolean -> true, null -> null, array ->
  ``minItems`` filled items (none by default), object -> its ``required`` properties (all declared
  properties when there is no ``required``). ``anyOf``/``oneOf`` use their first branch.
* **Limits.** The reply is cut before the first ``stop`` string (finish ``stop``), then to
  ``max_output_tokens`` words (finish ``length``).
* **Options.** What it cannot honour is refused with a 400 naming the field, so another
  candidate may serve the request: ``logprobs`` / ``top_logprobs`` (it has no token
  probabilities), ``n`` above 1, ``logit_bias``, and fields the contract does not model (a
  wire format's extensions). Sampling knobs (``temperature``, ``top_p``, ``top_k``, ``seed``,
  the penalties) change nothing in an answer that depends on the input alone; ``reasoning``
  gets no reasoning (it does not think); ``service_tier``, ``store``, ``metadata``, ``user``
  and ``prediction`` are bookkeeping and hints: all dropped by that rule.
* **Streaming.** ``stream_chat`` yields the same answer as ``chat``: one text delta per word with its
  trailing whitespace, tool-call arguments in 12-character fragments, usage, then the end.
* **Embeddings.** Each lowercased word adds +-1 at a bucket chosen by BLAKE2b of the word (stable
  across runs and platforms); the vector has ``dimensions`` (default 256) entries and unit length.
* **Transcription.** WAV only (stdlib ``wave``): the text states the real duration and format, e.g.
  ``[deterministic transcript: 1.50 s of audio, 16000 Hz, 1 channel]``.

Any ``model`` name is accepted and echoed; ``list_models`` reports the three built-in names.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ClassVar

import orjson

from palyra.model import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FailureClass,
    FinishReason,
    ImagePart,
    Message,
    MessageEnd,
    MessageStart,
    ModelInfo,
    NamedToolChoice,
    PalyraError,
    Role,
    StreamEvent,
    TextDelta,
    TokenCount,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    ToolSpec,
    TranscriptionRequest,
    TranscriptionResponse,
    TranscriptionSegment,
    Usage,
    UsageEvent,
)
from palyra.model.limits import decoded_image_size
from palyra.model.requests import OPTION_FIELDS
from palyra.providers.base import Credential, ProviderCapabilities
from palyra.providers.wav import read_wav_info

CHAT_MODEL = "deterministic"
EMBEDDING_MODEL = "deterministic-embed"
TRANSCRIPTION_MODEL = "deterministic-whisper"
DEFAULT_EMBEDDING_DIMENSIONS = 256
TOOL_ARGUMENT_FRAGMENT_CHARS = 12
_MAX_SCHEMA_DEPTH = 8

_WORD = re.compile(r"\S+")
_PIECE = re.compile(r"^\s+|\S+\s*")
_TRIGGER = re.compile(r"(?i)\b(?:call|use)\s+`?([A-Za-z0-9_-]+)`?")


def count_words(text: str) -> int:
    """This provider's tokenizer: one token per run of non-whitespace."""
    return len(_WORD.findall(text))


def split_words(text: str) -> list[str]:
    """Words with their trailing whitespace (leading whitespace on its own); joined they are ``text``."""
    return _PIECE.findall(text)


def input_token_count(request: ChatRequest) -> int:
    total = 0
    for message in request.messages:
        total += count_words(message.text_content(" "))
        total += len(message.images)
        for call in message.tool_calls:
            total += count_words(call.arguments)
        for part in message.content:
            if isinstance(part, ToolResultPart):
                total += count_words(part.content_text())
    return total


def fill_schema(schema: Any, text: str, number: int, depth: int = 0) -> Any:
    """A value of the schema's type; see the module docstring for the exact rules."""
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return fill_schema(schema[key][0], text, number, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and isinstance(schema.get("properties"), dict):
        kind = "object"
    match kind:
        case "string":
            return text
        case "integer":
            return number
        case "number":
            return float(number)
        case "boolean":
            return True
        case "array":
            count = schema.get("minItems", 0)
            item = schema.get("items", {})
            n = count if isinstance(count, int) else 0
            return [fill_schema(item, text, number, depth + 1) for _ in range(n)]
        case "object":
            props = schema.get("properties")
            props = props if isinstance(props, dict) else {}
            required = schema.get("required")
            names = required if isinstance(required, list) else list(props)
            return {
                name: fill_schema(props.get(name, {}), text, number, depth + 1)
                for name in names
                if isinstance(name, str)
            }
        case _:
            return None


def json_objects_in(text: str) -> tuple[list[dict[str, Any]], str]:
    """Every ``{...}`` in ``text`` that parses as a JSON object, and the text without them."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    rest: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "{":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                value, end = None, i
            if isinstance(value, dict):
                found.append(value)
                i = end
                continue
        rest.append(text[i])
        i += 1
    return found, "".join(rest)


def hash_embedding(text: str, dimensions: int) -> list[float]:
    """A unit-length bag-of-words vector; BLAKE2b keeps it identical on every run and platform."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()) or [text]:
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimensions] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def _last_user(request: ChatRequest) -> Message | None:
    return next((m for m in reversed(request.messages) if m.role is Role.USER), None)


def _describe_image(image: ImagePart) -> str:
    if image.data is not None:
        return f"{image.media_type}, {decoded_image_size(image.data)} bytes"
    return image.url or ""


def _text_reply(user: Message | None) -> str:
    text = user.text_content(" ").strip() if user else ""
    reply = f"You said: {text}" if text else "You said nothing."
    images = user.images if user else []
    if images:
        noun = "image" if len(images) == 1 else "images"
        described = "; ".join(_describe_image(i) for i in images)
        reply += f"\n[{len(images)} {noun}: {described}]"
    return reply


def _tool_result_reply(request: ChatRequest) -> str:
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    lines: list[str] = []
    for message in request.messages:
        if message.role is Role.ASSISTANT:
            lines = []
        for part in message.content:
            if isinstance(part, ToolResultPart):
                verb = "failed" if part.is_error else "returned"
                name = names.get(part.tool_call_id, part.tool_call_id)
                lines.append(f"Tool {name} {verb}: {part.content_text()}")
    return "\n".join(lines)


def _tools_to_call(request: ChatRequest, text: str) -> list[ToolSpec]:
    if not request.tools or request.tool_choice == "none":
        return []
    by_name = {t.name: t for t in request.tools}
    if isinstance(request.tool_choice, NamedToolChoice):
        return [by_name[request.tool_choice.name]]
    chosen: list[ToolSpec] = []
    for name in _TRIGGER.findall(text):
        if name in by_name and by_name[name] not in chosen:
            chosen.append(by_name[name])
    if not chosen and request.tool_choice == "required":
        chosen = [request.tools[0]]
    return chosen[:1] if request.parallel_tool_calls is False else chosen


def _tool_arguments(tool: ToolSpec, text: str, number: int) -> str:
    explicit, rest = json_objects_in(text)
    rest = _TRIGGER.sub(" ", rest)
    filler = " ".join(rest.split()).strip(" .,;:!?")
    props = tool.parameters.get("properties")
    props = props if isinstance(props, dict) else {}
    required = tool.parameters.get("required")
    names = required if isinstance(required, list) else list(props)
    args: dict[str, Any] = {
        name: fill_schema(props.get(name, {}), filler or name, number)
        for name in names
        if isinstance(name, str)
    }
    declared = set(props) or None
    for obj in explicit:
        args.update({k: v for k, v in obj.items() if declared is None or k in declared})
    return orjson.dumps(args).decode()


def _limit(text: str, request: ChatRequest) -> tuple[str, FinishReason]:
    cuts = [text.find(s) for s in request.stop if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    limit = request.max_output_tokens
    if limit is not None and count_words(text) > limit:
        pieces = [p for p in split_words(text) if p.strip()]
        return "".join(pieces[:limit]).rstrip(), "length"
    return text, "stop"


def _request_digest(request: ChatRequest) -> str:
    return hashlib.sha256(request.model_dump_json(exclude={"stream"}).encode()).hexdigest()


def refuse_unhonoured(request: ChatRequest) -> None:
    """A 400 naming the first option the provider cannot honour (see *Options*); one set test
    for the usual request, which sets none."""
    if request.extensions is None and OPTION_FIELDS.isdisjoint(request.model_fields_set):
        return
    refused: str | None = None
    foreign = request.extensions.unmapped() if request.extensions is not None else None
    if request.logprobs:
        refused = "logprobs"
    elif request.n is not None and request.n > 1:
        refused = "n"
    elif request.logit_bias:
        refused = "logit_bias"
    elif foreign is not None:
        raise PalyraError.of(
            FailureClass.UNSUPPORTED_CAPABILITY,
            f"{', '.join(foreign.fields)}: not a field the deterministic provider knows; remove "
            f"it, or route to a model of the {foreign.owner} API, which receives it as sent",
            param=next(iter(foreign.fields)),
        )
    if refused is not None:
        raise PalyraError.of(
            FailureClass.UNSUPPORTED_CAPABILITY,
            f"{refused}: the deterministic provider cannot honour it (its answers have one "
            "choice, no token probabilities and no token bias); remove it, or route to an "
            "OpenAI model",
            param=refused,
        )


def answer(request: ChatRequest) -> ChatResponse:
    """The whole answer to a chat request, by the rules in the module docstring."""
    digest = _request_digest(request)
    user = _last_user(request)
    user_text = user.text_content(" ") if user else ""
    number = count_words(user_text)
    last = request.messages[-1]
    calls: list[ToolCallPart] = []
    if last.role is Role.USER:
        calls = [
            ToolCallPart(
                id=f"call_{digest[:16]}{i}",
                name=tool.name,
                arguments=_tool_arguments(tool, user_text, number),
            )
            for i, tool in enumerate(_tools_to_call(request, user_text))
        ]
    content = ""
    finish: FinishReason = "tool_calls"
    if not calls:
        reply = _tool_result_reply(request) if last.role is Role.TOOL else _text_reply(user)
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_object":
            reply = orjson.dumps({"reply": reply}).decode()
        elif fmt is not None and fmt.type == "json_schema":
            reply = orjson.dumps(fill_schema(fmt.json_schema, reply, number)).decode()
        content, finish = _limit(reply, request)
    output = count_words(content) + sum(
        count_words(c.name) + count_words(c.arguments) for c in calls
    )
    return ChatResponse(
        id=f"det-{digest[:24]}",
        model=request.model,
        content=content,
        tool_calls=calls,
        finish_reason=finish,
        usage=Usage(input_tokens=input_token_count(request), output_tokens=output),
    )


def response_events(response: ChatResponse) -> Iterator[StreamEvent]:
    """The answer as the event sequence a streaming upstream would send."""
    yield MessageStart(id=response.id, model=response.model, created=response.created)
    for piece in split_words(response.content):
        yield TextDelta(text=piece)
    for index, call in enumerate(response.tool_calls):
        yield ToolCallStart(index=index, id=call.id, name=call.name)
        args = call.arguments
        for start in range(0, len(args), TOOL_ARGUMENT_FRAGMENT_CHARS):
            yield ToolCallDelta(
                index=index, arguments=args[start : start + TOOL_ARGUMENT_FRAGMENT_CHARS]
            )
        yield ToolCallEnd(index=index)
    yield UsageEvent(usage=response.usage)
    yield MessageEnd(finish_reason=response.finish_reason)


class DeterministicProvider:
    """Answers from the input alone: no network, no keys, the same output on every machine."""

    kind: ClassVar[str] = "deterministic"
    capabilities: ClassVar[ProviderCapabilities] = ProviderCapabilities(
        embeddings=True, transcription=True, count_tokens=True
    )

    def __init__(
        self,
        id: str = "deterministic",
        chunk_delay_s: float = 0.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.id = id
        self.chunk_delay_s = chunk_delay_s
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"DeterministicProvider(id={self.id!r}, chunk_delay_s={self.chunk_delay_s})"

    async def chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> ChatResponse:
        refuse_unhonoured(request)
        return answer(request)

    async def stream_chat(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> AsyncIterator[StreamEvent]:
        refuse_unhonoured(request)
        for i, event in enumerate(response_events(answer(request))):
            if i and self.chunk_delay_s > 0:
                await self._sleep(self.chunk_delay_s)
            yield event

    async def embed(
        self, request: EmbeddingRequest, *, credential: Credential | None = None
    ) -> EmbeddingResponse:
        dims = request.dimensions or DEFAULT_EMBEDDING_DIMENSIONS
        return EmbeddingResponse(
            model=request.model,
            vectors=[hash_embedding(text, dims) for text in request.inputs],
            usage=Usage(input_tokens=sum(count_words(t) for t in request.inputs)),
        )

    async def transcribe(
        self, request: TranscriptionRequest, *, credential: Credential | None = None
    ) -> TranscriptionResponse:
        info = read_wav_info(request.audio, filename=request.filename)
        duration = info.duration_s
        channels = "1 channel" if info.channels == 1 else f"{info.channels} channels"
        text = (
            f"[deterministic transcript: {duration:.2f} s of audio, "
            f"{info.sample_rate} Hz, {channels}]"
        )
        return TranscriptionResponse(
            text=text,
            language=request.language,
            duration_s=duration,
            segments=[TranscriptionSegment(id=0, start=0.0, end=duration, text=text)],
        )

    async def list_models(self, *, credential: Credential | None = None) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=CHAT_MODEL,
                provider=self.id,
                owned_by="palyra",
                capabilities=frozenset({"chat", "tools", "vision", "json"}),
            ),
            ModelInfo(
                id=EMBEDDING_MODEL,
                provider=self.id,
                owned_by="palyra",
                capabilities=frozenset({"embeddings"}),
            ),
            ModelInfo(
                id=TRANSCRIPTION_MODEL,
                provider=self.id,
                owned_by="palyra",
                capabilities=frozenset({"transcription"}),
            ),
        ]

    async def count_tokens(
        self, request: ChatRequest, *, credential: Credential | None = None
    ) -> TokenCount:
        return TokenCount(input_tokens=input_token_count(request), estimated=False)

    async def aclose(self) -> None:
        return None
