"""Input token counts before any upstream call, and splitting of oversized stream deltas.

OpenAI models are counted exactly with their own tiktoken encoding (loaded offline, see
:mod:`palyra.providers.tiktoken_seed`). Every other family gets a calibrated estimate and says
so (``estimated=True``): a count that only looks exact is how gateways end up overflowing
context windows.

Chat Completions formula (from OpenAI's published counting recipe, exact for text):
``sum(3 + tokens(role) + tokens(content) [+ tokens(name) + 1]) + 3`` where the final 3 prime the
reply. Parts the recipe does not cover are added on top and mark the count as estimated:

- tool schemas: ``TOOLS_OVERHEAD_TOKENS`` once, plus per tool ``TOKENS_PER_TOOL`` and the
  tokens of its compact JSON ``{"name", "description", "parameters"}`` (OpenAI renders tools in
  a terser internal form, so this errs high);
- assistant tool calls: ``TOKENS_PER_TOOL_CALL`` plus the tokens of name and arguments;
- a ``json_schema`` response format: the tokens of the compact schema JSON;
- images: :mod:`palyra.providers.image_tokens` (exact only for ``low``/``high`` detail with a
  known size; ``auto`` and unknown sizes are costed at the formula's upper bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

import orjson
import tiktoken.model

from palyra.model import (
    ChatRequest,
    ExtensionPart,
    FailureClass,
    ImagePart,
    Message,
    PalyraError,
    TextPart,
    TokenCount,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)
from palyra.providers.image_tokens import anthropic_image_tokens, openai_image_tokens
from palyra.providers.tiktoken_seed import get_offline_encoding

MAX_MODEL_TOKENS_PER_EVENT = 64
"""Most tokens one ``TextDelta`` carries when Palyra re-chunks a large delta (see
:func:`split_text_delta`). A chunk size for smooth streaming, not a limit on the answer."""

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
TOOLS_OVERHEAD_TOKENS = 12
TOKENS_PER_TOOL = 3
TOKENS_PER_TOOL_CALL = 3

ESTIMATE_BASE_ENCODING = "o200k_base"
ESTIMATE_FACTOR = 1.1
"""Non-OpenAI models: o200k_base count times this factor. Claude's tokenizer yields more tokens
than o200k_base for the same text and has no offline implementation; 1.1 is a margin that keeps
context checks on the safe side, not a measured ratio. Use a provider ``count_tokens`` endpoint
when an exact number matters."""

_EXACT_ENCODINGS = frozenset({"cl100k_base", "o200k_base"})


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """An input token count. ``encoding`` names the tokenizer when the count is exact text."""

    input_tokens: int
    estimated: bool
    encoding: str | None

    def as_token_count(self) -> TokenCount:
        return TokenCount(input_tokens=self.input_tokens, estimated=self.estimated)


@lru_cache(maxsize=256)  # model names; bounded because some come from requests
def exact_encoding_name(model: str) -> str | None:
    """The tiktoken encoding OpenAI uses for ``model`` (``openai/`` style prefixes ignored)."""
    base = model.rsplit("/", 1)[-1]
    try:
        name = tiktoken.model.encoding_name_for_model(base)
    except KeyError:
        return None
    return name if name in _EXACT_ENCODINGS else None


def _is_anthropic(model: str) -> bool:
    return model.rsplit("/", 1)[-1].lower().startswith("claude")


@cache
def _counter(encoding_name: str) -> Callable[[str], int]:
    encoding = get_offline_encoding(encoding_name)

    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text)) if text else 0

    return count


def warm_up(models: Iterable[str]) -> None:
    """Load the tokenizers these models are counted with (about 0.1-0.3 s each), so the first
    request that needs a count does not pay for it; in a parent before forking, every worker
    shares the loaded tables."""
    for name in {exact_encoding_name(model) or ESTIMATE_BASE_ENCODING for model in models}:
        _counter(name)("warm")


def estimate_text_tokens(text: str, model: str) -> int:
    """Tokens of bare text: exact for OpenAI models, ``ceil(o200k * ESTIMATE_FACTOR)`` otherwise."""
    exact = exact_encoding_name(model)
    if exact is not None:
        return _counter(exact)(text)
    return math.ceil(_counter(ESTIMATE_BASE_ENCODING)(text) * ESTIMATE_FACTOR)


def _compact_json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _tool_tokens(tools: list[ToolSpec], count: Callable[[str], int]) -> int:
    if not tools:
        return 0
    total = TOOLS_OVERHEAD_TOKENS
    for tool in tools:
        spec = {
            "name": tool.name,
            "description": tool.description or "",
            "parameters": tool.parameters,
        }
        total += TOKENS_PER_TOOL + count(_compact_json(spec))
    return total


@dataclass(slots=True)
class _Tally:
    text: int = 0
    images: int = 0
    estimated: bool = False


def _image_tokens(image: ImagePart, anthropic: bool) -> tuple[int, bool]:
    """(tokens, exact?) for one image."""
    if anthropic:
        return anthropic_image_tokens(image.width, image.height), False
    known = image.width is not None and image.height is not None
    exact = image.detail == "low" or (image.detail == "high" and known)
    return openai_image_tokens(image.width, image.height, image.detail), exact


def _message_tokens(
    message: Message, count: Callable[[str], int], anthropic: bool, tally: _Tally
) -> None:
    tally.text += TOKENS_PER_MESSAGE + count(message.role.value)
    if message.name:
        tally.text += count(message.name) + TOKENS_PER_NAME
    for part in message.content:
        if isinstance(part, TextPart):
            tally.text += count(part.text)
        elif isinstance(part, ToolResultPart):
            tally.text += count(part.content_text())
        elif isinstance(part, ToolCallPart):
            tally.text += TOKENS_PER_TOOL_CALL + count(part.name) + count(part.arguments)
            tally.estimated = True
        elif isinstance(part, ImagePart):
            tokens, exact = _image_tokens(part, anthropic)
            tally.images += tokens
            tally.estimated |= not exact
        elif isinstance(part, ExtensionPart):  # a block Palyra does not model: its JSON text
            tally.text += count(orjson.dumps(part.block).decode())
            tally.estimated = True


def estimate_token_count(request: ChatRequest, model: str) -> TokenEstimate:
    """Input tokens of a chat request for ``model`` (see the module docstring for the formula)."""
    exact = exact_encoding_name(model)
    anthropic = _is_anthropic(model)
    count = _counter(exact or ESTIMATE_BASE_ENCODING)
    tally = _Tally(text=REPLY_PRIMING_TOKENS, estimated=exact is None)
    for message in request.messages:
        _message_tokens(message, count, anthropic, tally)
    if request.tools:
        tally.text += _tool_tokens(request.tools, count)
        tally.estimated = True
    response_format = request.response_format
    if response_format is not None and response_format.json_schema is not None:
        tally.text += count(_compact_json(response_format.json_schema))
        tally.estimated = True
    text = tally.text if exact is not None else math.ceil(tally.text * ESTIMATE_FACTOR)
    return TokenEstimate(
        input_tokens=text + tally.images,
        estimated=tally.estimated,
        encoding=exact,
    )


def check_context_window(
    request: ChatRequest,
    model: str,
    context_window: int,
    default_max_output: int | None = None,
    *,
    output_field: str = "max_output_tokens",
) -> TokenEstimate:
    """Refuse (``context_too_long``) a request whose input plus requested output cannot fit.

    The requested output is ``request.max_output_tokens``, else ``default_max_output``, else 0.
    Runs before any upstream call so an oversized request costs nothing and can fail over.
    ``output_field`` is the name the caller gave the output limit (``max_tokens`` on the
    Messages API, say), so the message names the field the client sent.
    """
    if context_window < 1:
        raise ValueError(f"context_window must be at least 1, got {context_window}")
    estimate = estimate_token_count(request, model)
    requested = request.max_output_tokens or default_max_output or 0
    needed = estimate.input_tokens + requested
    if needed > context_window:
        label = "estimated " if estimate.estimated else ""
        raise PalyraError.of(
            FailureClass.CONTEXT_TOO_LONG,
            f"model {model!r}: {label}input {estimate.input_tokens} tokens + requested output "
            f"{requested} tokens = {needed} > context window {context_window}; shorten the "
            "conversation" + (f" or lower {output_field}" if request.max_output_tokens else ""),
            model=model,
            param="messages",
            code="context_length_exceeded",
        )
    return estimate


def _byte_bound(text: str) -> int:
    """At least the token count of ``text`` in any byte-level BPE: every token covers at least
    one UTF-8 byte. ``isascii`` is constant-time, so ASCII text costs no encoding."""
    return len(text) if text.isascii() else len(text.encode())


def token_upper_bound(request: ChatRequest, model: str) -> int:
    """A cheap upper bound of :func:`estimate_token_count`: the same formula with each text's
    token count replaced by its UTF-8 length."""
    tally = _Tally(text=REPLY_PRIMING_TOKENS)
    anthropic = _is_anthropic(model)
    for message in request.messages:
        _message_tokens(message, _byte_bound, anthropic, tally)
    if request.tools:
        tally.text += _tool_tokens(request.tools, _byte_bound)
    response_format = request.response_format
    if response_format is not None and response_format.json_schema is not None:
        tally.text += _byte_bound(_compact_json(response_format.json_schema))
    exact = exact_encoding_name(model) is not None
    return (tally.text if exact else math.ceil(tally.text * ESTIMATE_FACTOR)) + tally.images


def refuse_if_too_long(
    request: ChatRequest,
    model: str,
    context_window: int,
    default_max_output: int | None = None,
    *,
    output_field: str = "max_output_tokens",
) -> None:
    """:func:`check_context_window` for the hot path: when the byte-length bound already fits,
    nothing is tokenized (a long prompt costs milliseconds of BPE per request otherwise)."""
    requested = request.max_output_tokens or default_max_output or 0
    if context_window >= 1 and token_upper_bound(request, model) + requested <= context_window:
        return
    check_context_window(
        request, model, context_window, default_max_output, output_field=output_field
    )


def _default_delta_counter(text: str) -> int:
    return _counter(ESTIMATE_BASE_ENCODING)(text)


def _fitting_prefix(text: str, max_tokens: int, count: Callable[[str], int]) -> int:
    """Length of a longest prefix of ``text`` within ``max_tokens``; at least one character."""
    fits, probe = 0, min(len(text), max_tokens * 4)
    while count(text[:probe]) <= max_tokens:
        fits = probe
        if probe == len(text):
            return probe
        probe = min(len(text), probe * 2)
    too_long = probe
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if count(text[:middle]) <= max_tokens:
            fits = middle
        else:
            too_long = middle
    return max(fits, 1)


def split_text_delta(
    text: str,
    max_tokens: int = MAX_MODEL_TOKENS_PER_EVENT,
    counter: Callable[[str], int] | None = None,
) -> list[str]:
    """Split one text delta into pieces of at most ``max_tokens`` tokens each.

    ``"".join(pieces) == text`` always: nothing is truncated or re-encoded. Pieces are cut on
    character boundaries; a single character is never split, so one whose own count exceeds a
    tiny ``max_tokens`` travels alone (with o200k_base no character exceeds 4 tokens). Empty
    text gives no pieces. ``counter`` defaults to o200k_base token counting.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    count = counter or _default_delta_counter
    pieces: list[str] = []
    rest = text
    while rest:
        cut = _fitting_prefix(rest, max_tokens, count)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return pieces
