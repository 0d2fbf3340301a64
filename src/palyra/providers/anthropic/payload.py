"""Neutral ``ChatRequest`` -> Anthropic Messages API payload (``POST /v1/messages``).

Anthropic's wire rules that the neutral contract does not have, and how they are met:

* There is no system role: system and developer text is lifted into the top-level ``system``.
* Turns alternate user/assistant and start with user: consecutive same-role turns are merged, and a
  conversation that starts with the assistant (or has no turns at all) gets a short placeholder user
  turn (:data:`PLACEHOLDER_USER_TEXT`) in front.
* Tool results are user content: every ``tool_result`` answering one assistant turn goes into the
  single user message that follows it, results first, then any user text or images of that turn.
* Text blocks may not be blank, and a final assistant turn may not end in whitespace.
* Tool-use ids must match ``[a-zA-Z0-9_-]+``; other characters become ``_`` (in the call and in its
  result alike, so the pair still matches).
* ``temperature`` tops out at 1 (OpenAI's at 2): higher values are sent as 1.
* There is no ``response_format``: ``json_object`` and ``json_schema`` add an instruction to the
  system prompt (:func:`json_instruction`), the schema included, since instructing is what the
  Messages API offers for every model.
* ``system`` is a string unless the client sent blocks or marked one for caching: then each system
  text is its own block, ``cache_control`` kept.
* Reasoning in assistant history goes back as ``thinking`` (signature byte for byte) and
  ``redacted_thinking`` blocks; reasoning without a signature (from an OpenAI-compatible model)
  is left out, since Anthropic refuses unsigned thinking.
* A reasoning effort with no budget (OpenAI's ``reasoning_effort``) becomes a thinking budget from
  :data:`EFFORT_BUDGETS`, kept below ``max_tokens``; ``none`` turns thinking off.

Requests Anthropic would refuse for tool bookkeeping (a tool call with no result in the next turn,
a result for a call the previous assistant turn did not make) fail here with ``invalid_request``
naming the tool call, before anything leaves the process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from palyra.model import (
    CacheControl,
    ChatRequest,
    DocumentPart,
    ExtensionPart,
    Extensions,
    FailureClass,
    ImagePart,
    Message,
    NamedToolChoice,
    PalyraError,
    RedactedThinkingPart,
    Role,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)
from palyra.model.extensions import ANTHROPIC_MESSAGES, refuse_unmapped
from palyra.model.reasoning import DEFAULT_EFFORT_BUDGETS
from palyra.model.requests import OPTION_FIELDS, ReasoningConfig, ReasoningEffort
from palyra.providers.anthropic.output_config import NO_OPTIONS, OutputOptions, plan_output

PLACEHOLDER_USER_TEXT = "(continue)"
ANTHROPIC_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MAX_TEMPERATURE = 1.0
MAX_METADATA_USER_ID_CHARS = 512
COUNT_TOKENS_KEYS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
MIN_THINKING_BUDGET = 1024
EFFORT_BUDGETS: Mapping[ReasoningEffort, int] = DEFAULT_EFFORT_BUDGETS
"""Thinking budget per reasoning effort, for requests that name an effort and no budget."""
ANTHROPIC_DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})

_TOOL_ID_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
# Module constants: cheaper than looking the members up on the enum class per message.
_SYSTEM_ROLES = (Role.SYSTEM, Role.DEVELOPER)
_ASSISTANT = Role.ASSISTANT

Block = dict[str, Any]


def _invalid(message: str, param: str = "messages") -> PalyraError:
    return PalyraError.of(FailureClass.INVALID_REQUEST, message, param=param, provider="anthropic")


def anthropic_tool_id(call_id: str) -> str:
    """A tool-use id Anthropic accepts, stable for the same input."""
    return _TOOL_ID_BAD_CHARS.sub("_", call_id) or "toolu_"


def json_instruction(request: ChatRequest) -> str | None:
    """The system instruction standing in for ``response_format``, or None for plain text."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return (
            "Respond with a single valid JSON object and nothing else: "
            "no prose before or after it and no Markdown code fences."
        )
    schema = orjson.dumps(fmt.json_schema, option=orjson.OPT_SORT_KEYS).decode()
    name = f' named "{fmt.schema_name}"' if fmt.schema_name else ""
    return (
        "Respond with a single valid JSON value and nothing else: no prose before or after it "
        f"and no Markdown code fences. It must conform to this JSON Schema{name}:\n{schema}"
    )


def _cache(block: Block, marker: CacheControl | None) -> Block:
    if marker is not None:
        block["cache_control"] = (
            {"type": marker.type}
            if marker.ttl is None
            else {"type": marker.type, "ttl": marker.ttl}
        )
    return block


def _own(block: Block, extensions: Extensions | None) -> Block:
    """The block with its Anthropic extensions (fields the contract does not model) written
    back as sent; another API's are left out by rule (they are that API's own options)."""
    if extensions is not None and extensions.owner == ANTHROPIC_MESSAGES:
        block.update(extensions.fields)
    return block


def _part(part: TextPart | ImagePart | DocumentPart | ToolCallPart | ToolResultPart) -> Block:
    """The block of a part of the kinds every message may carry across APIs."""
    if isinstance(part, ImagePart):
        return _own(_image_block(part), part.extensions)
    if isinstance(part, ToolCallPart):
        return _own(_tool_use_block(part), part.extensions)
    if isinstance(part, ToolResultPart):
        return _own(_tool_result_block(part), part.extensions)
    if isinstance(part, DocumentPart):
        return _own(_document_block(part), part.extensions)
    return _own(_cache({"type": "text", "text": part.text}, part.cache_control), part.extensions)


def _system(request: ChatRequest, instruct: bool = True) -> str | list[Block] | None:
    """The top-level ``system``: blocks when the client sent blocks or marks one for caching;
    ``instruct`` adds the response format's instruction."""
    parts = [
        part
        for message in request.messages
        if message.role in _SYSTEM_ROLES
        for part in message.content
        if isinstance(part, TextPart) and part.text.strip()
    ]
    instruction = json_instruction(request) if instruct else None
    as_blocks = any(p.cache_control is not None or p.extensions for p in parts) or any(
        m.content_list for m in request.messages if m.role in _SYSTEM_ROLES
    )
    if as_blocks:
        blocks = [_part(p) for p in parts]
        if instruction is not None:
            blocks.append({"type": "text", "text": instruction})
        return blocks or None
    texts = [p.text for p in parts]
    if instruction is not None:
        texts.append(instruction)
    return "\n\n".join(texts) if texts else None


def _image_block(image: ImagePart) -> Block:
    if image.url is not None and image.url.startswith("data:"):
        try:
            image = ImagePart.from_data_url(image.url)
        except ValueError as exc:
            raise _invalid(f"an image data URL is malformed: {exc}") from exc
    if image.url is not None:
        return _cache(
            {"type": "image", "source": {"type": "url", "url": image.url}}, image.cache_control
        )
    if image.media_type not in ANTHROPIC_IMAGE_MEDIA_TYPES:
        known = ", ".join(sorted(ANTHROPIC_IMAGE_MEDIA_TYPES))
        raise _invalid(
            f"Anthropic does not accept images of type {image.media_type!r} "
            f"(it accepts {known}); convert the image to one of those"
        )
    source = {"type": "base64", "media_type": image.media_type, "data": image.data}
    return _cache({"type": "image", "source": source}, image.cache_control)


def _document_source(doc: DocumentPart) -> Block:
    if doc.text is not None:
        return {"type": "text", "media_type": "text/plain", "data": doc.text}
    if doc.url is not None:
        return {"type": "url", "url": doc.url}
    if doc.file_id is not None:
        if doc.file_id.startswith("file-"):
            raise _invalid(
                f"document file id {doc.file_id!r} is an OpenAI file id, which Anthropic cannot "
                "read; send the file's content inline (file_data) instead"
            )
        return {"type": "file", "file_id": doc.file_id}
    if doc.media_type not in ANTHROPIC_DOCUMENT_MEDIA_TYPES:
        raise _invalid(
            f"Anthropic does not accept inline documents of type {doc.media_type!r} (it accepts "
            "application/pdf, or plain text as a text document); convert the document"
        )
    return {"type": "base64", "media_type": doc.media_type, "data": doc.data}


def _document_block(doc: DocumentPart) -> Block:
    block: Block = {"type": "document", "source": _document_source(doc)}
    if doc.title is not None:
        block["title"] = doc.title
    elif doc.filename is not None:
        block["title"] = doc.filename
    if doc.context is not None:
        block["context"] = doc.context
    if doc.citations is not None:
        block["citations"] = {"enabled": doc.citations}
    return _cache(block, doc.cache_control)


def _tool_use_block(call: ToolCallPart) -> Block:
    parsed = call.arguments_json()
    tool_input = parsed if isinstance(parsed, dict) else {"raw": call.arguments}
    block = {
        "type": "tool_use",
        "id": anthropic_tool_id(call.id),
        "name": call.name,
        "input": tool_input,
    }
    return _cache(block, call.cache_control)


def _tool_result_block(result: ToolResultPart) -> Block:
    block: Block = {"type": "tool_result", "tool_use_id": anthropic_tool_id(result.tool_call_id)}
    text = result.content_text()
    if text:
        block["content"] = text
    if result.is_error:
        block["is_error"] = True
    return _cache(block, result.cache_control)


def _blocks(message: Message) -> list[Block]:
    blocks: list[Block] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text.strip():
                if part.cache_control is None and part.extensions is None:  # the usual one
                    blocks.append({"type": "text", "text": part.text})
                else:
                    blocks.append(_part(part))
        elif isinstance(part, ThinkingPart):
            if part.signature is not None:  # unsigned reasoning is refused by Anthropic
                block: Block = {
                    "type": "thinking",
                    "thinking": part.thinking,
                    "signature": part.signature,
                }
                blocks.append(_own(block, part.extensions))
        elif isinstance(part, RedactedThinkingPart):
            blocks.append(_own({"type": "redacted_thinking", "data": part.data}, part.extensions))
        elif isinstance(part, ExtensionPart):
            if part.owner == ANTHROPIC_MESSAGES:
                blocks.append(dict(part.block))
            elif message.role is not _ASSISTANT:
                raise _foreign_block(part)
            # (another API's block in assistant history: left out, by rule)
        else:
            blocks.append(_part(part))
    if message.role is _ASSISTANT and len(blocks) > 1:
        # Anthropic reads tool_use blocks after the text of the same turn.
        blocks.sort(key=lambda b: b["type"] == "tool_use")
    return blocks


def _turns(request: ChatRequest) -> list[Block]:
    """Messages as alternating user/assistant turns, tool results first in their user turn."""
    turns: list[Block] = []
    for message in request.messages:
        if message.role in _SYSTEM_ROLES:
            continue
        role = "assistant" if message.role is _ASSISTANT else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
        extensions = message.extensions
        if extensions is not None and extensions.owner == ANTHROPIC_MESSAGES:
            turns[-1].update(extensions.fields)  # another format's are left out, by rule
    for turn in turns:
        # (A sort calls its key even for a single block: skipped when there is nothing to order.)
        if turn["role"] == "user" and len(turn["content"]) > 1:
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    if turns and turns[-1]["role"] == "assistant":
        _strip_final_assistant(turns)
    if not turns or turns[0]["role"] != "user":
        turns.insert(
            0, {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]}
        )
    return turns


def _strip_final_assistant(turns: list[Block]) -> None:
    """Anthropic refuses a final (prefill) assistant turn that ends in whitespace."""
    content: list[Block] = turns[-1]["content"]
    last = content[-1]
    if last["type"] == "text":
        stripped = last["text"].rstrip()
        if stripped:
            content[-1] = {**last, "text": stripped}
        else:
            content.pop()
    if not content:
        turns.pop()


def _check_tool_pairs(turns: list[Block]) -> None:
    """Every tool_use answered in the very next user turn, and no result without its call."""
    asked: list[str] = []
    for turn in turns:
        ids = [b["tool_use_id"] for b in turn["content"] if b["type"] == "tool_result"]
        if turn["role"] == "user":
            if not asked and not ids:
                continue  # nothing asked, nothing answered: no pair to check
            missing = [i for i in asked if i not in ids]
            if missing:
                raise _invalid(
                    f"tool call {missing[0]!r} has no tool result in the message after it; "
                    "add a tool message answering it before the next user message"
                )
            stray = [i for i in ids if i not in asked]
            if stray:
                raise _invalid(
                    f"a tool result answers tool call {stray[0]!r}, which the assistant message "
                    "just before it did not make; remove the result or add the call"
                )
            asked = []
        else:
            asked = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
    if asked:
        raise _invalid(
            f"tool call {asked[0]!r} in the last assistant message has no tool result; "
            "append a tool message answering it"
        )


def _foreign_block(part: ExtensionPart) -> PalyraError:
    kind = part.block.get("type")
    return PalyraError.of(
        FailureClass.UNSUPPORTED_CAPABILITY,
        f"messages: a content block of type {kind!r} from the {part.owner} API has no "
        "counterpart in the Anthropic Messages API, and the model would answer without it; "
        f"remove it, or route to a model of the {part.owner} API",
        param="messages",
        provider="anthropic",
    )


def _tool(spec: ToolSpec) -> Block:
    extensions = spec.extensions
    if spec.server_type is not None and extensions is not None:
        if extensions.owner != ANTHROPIC_MESSAGES:
            raise _invalid(
                f"tool {spec.name!r} is a {spec.server_type!r} tool of the {extensions.owner} "
                "API, which Anthropic does not run; remove it, or route to a model of that API",
                param="tools",
            )
        return {"name": spec.name, **extensions.fields}  # a tool the upstream runs, as sent
    schema = spec.parameters if "type" in spec.parameters else {"type": "object", **spec.parameters}
    tool: Block = {"name": spec.name, "input_schema": schema}
    if spec.description:
        tool["description"] = spec.description
    if spec.strict is not None:
        tool["strict"] = spec.strict
    return _own(_cache(tool, spec.cache_control), extensions)


def _tool_choice(request: ChatRequest) -> Block | None:
    choice = request.tool_choice
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, NamedToolChoice):
        block: Block = {"type": "tool", "name": choice.name}
    elif choice == "required":
        block = {"type": "any"}
    elif choice == "auto" or request.parallel_tool_calls is False:
        block = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        block["disable_parallel_tool_use"] = True
    return block


def thinking_config(
    reasoning: ReasoningConfig,
    max_tokens: int,
    effort_budgets: Mapping[ReasoningEffort, int] = EFFORT_BUDGETS,
) -> Block:
    """Anthropic's ``thinking`` for a reasoning configuration (see the module docstring)."""
    if not reasoning.enabled or (reasoning.budget_tokens is None and reasoning.effort == "none"):
        return {"type": "disabled"}
    if reasoning.adaptive:
        config: Block = {"type": "adaptive"}
    else:
        budget = reasoning.budget_tokens
        if budget is None:
            wanted = effort_budgets.get(reasoning.effort or "medium", EFFORT_BUDGETS["medium"])
            budget = min(wanted, max_tokens - 1)
            if budget < MIN_THINKING_BUDGET:
                raise _invalid(
                    f"reasoning_effort {reasoning.effort!r} needs a thinking budget of at least "
                    f"{MIN_THINKING_BUDGET} tokens below the output limit, and the limit is "
                    f"{max_tokens}; raise max_completion_tokens above {MIN_THINKING_BUDGET} or "
                    "send reasoning_effort 'none'",
                    param="reasoning_effort",
                )
        config = {"type": "enabled", "budget_tokens": budget}
    if reasoning.display is not None:
        config["display"] = reasoning.display
    return config


def build_anthropic_messages_payload(
    request: ChatRequest,
    *,
    default_max_tokens: int = 4096,
    effort_budgets: Mapping[ReasoningEffort, int] = EFFORT_BUDGETS,
    output: OutputOptions = NO_OPTIONS,
) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request``; see the module docstring for every mapping
    (and :mod:`.output_config` for what ``output`` says the model takes)."""
    turns = _turns(request)
    _check_tool_pairs(turns)
    max_tokens = request.max_output_tokens or default_max_tokens
    payload: dict[str, Any] = {
        "model": request.model,
        "max_tokens": max_tokens,
        "messages": turns,
    }
    reasoning = request.reasoning
    plan = (
        plan_output(request, output)
        if reasoning is not None or request.response_format is not None
        else None
    )
    system = _system(request, instruct=plan is None or not plan.format_as_output)
    if system is not None:
        payload["system"] = system
    if reasoning is not None and not (
        plan is not None
        and plan.effort_as_output
        and reasoning.enabled
        and reasoning.budget_tokens is None
        and not reasoning.adaptive
    ):
        payload["thinking"] = thinking_config(reasoning, max_tokens, effort_budgets)
    if plan is not None and plan.config is not None:
        payload["output_config"] = plan.config
    if request.tools:
        payload["tools"] = [_tool(t) for t in request.tools]
        choice = _tool_choice(request)
        if choice is not None:
            payload["tool_choice"] = choice
    if request.stop:
        payload["stop_sequences"] = list(request.stop)
    if request.temperature is not None:
        payload["temperature"] = min(request.temperature, MAX_TEMPERATURE)
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.top_k is not None:
        payload["top_k"] = request.top_k
    if request.user:
        if len(request.user) > MAX_METADATA_USER_ID_CHARS:
            raise _invalid(
                f"'user' is {len(request.user)} characters; Anthropic accepts at most "
                f"{MAX_METADATA_USER_ID_CHARS} in metadata.user_id; send a shorter id or a hash",
                param="user",
            )
        payload["metadata"] = {"user_id": request.user}
    if not OPTION_FIELDS.isdisjoint(request.model_fields_set):
        _add_options(payload, request)
    extensions = request.extensions
    if extensions is not None:
        if extensions.owner != ANTHROPIC_MESSAGES:
            refuse_unmapped(extensions, ANTHROPIC_MESSAGES)
        else:
            payload.update(extensions.fields)
    if request.stream:
        payload["stream"] = True
    return payload


# OpenAI's tiers as Anthropic's; the others (flex, scale, priority) have no Anthropic request
# value and are left out: Anthropic then serves from its standard capacity, as the answer's
# ``service_tier`` reports.
SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}


def _unsupported(field: str, why: str) -> PalyraError:
    """A field Anthropic cannot honour whose loss would change the answer: refused (and another
    candidate that can honour it may take the request)."""
    return PalyraError.of(
        FailureClass.UNSUPPORTED_CAPABILITY,
        f"{field}: {why}; remove it, or route to an OpenAI model",
        param=field,
        provider="anthropic",
    )


def _add_options(payload: dict[str, Any], request: ChatRequest) -> None:
    """Map or refuse the OpenAI-born options (README, "Field mapping"). Dropped by rule:
    ``seed``, ``presence_penalty``, ``frequency_penalty`` (Anthropic samples without them),
    ``store`` and ``prediction`` (nothing to store; a latency hint only)."""
    if request.n is not None and request.n > 1:
        raise _unsupported("n", f"Anthropic returns one answer per request, not {request.n}")
    if request.logprobs:
        raise _unsupported("logprobs", "Anthropic does not report token log probabilities")
    if request.logit_bias:
        raise _unsupported("logit_bias", "Anthropic has no token biasing")
    tier = SERVICE_TIERS.get(request.service_tier or "")
    if tier is not None:
        payload["service_tier"] = tier


def build_anthropic_count_tokens_payload(request: ChatRequest) -> dict[str, Any]:
    """The ``/v1/messages/count_tokens`` body: the messages payload minus generation settings."""
    full = build_anthropic_messages_payload(request)
    return {key: full[key] for key in COUNT_TOKENS_KEYS if key in full}
