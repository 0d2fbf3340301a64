"""OpenAI Chat Completions content beyond text and images: files and reasoning (pure).

``file`` parts (inline ``file_data`` or a ``file_id``) are neutral documents. Chat Completions has
no reasoning blocks; Palyra uses the two extension fields OpenAI-compatible servers and gateways
use for them, on assistant messages and stream deltas: ``reasoning_content`` (the reasoning
text, as DeepSeek and vLLM send it) and ``thinking_blocks`` (each block with its signature, as
LiteLLM sends them), so an OpenAI client can run a tool loop with Claude's extended thinking.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from palyra.daemon.surfaces.wire_checks import invalid, obj, string
from palyra.model import DocumentPart, ReasoningPart, RedactedThinkingPart, ThinkingPart


def file_part(part: dict[str, Any], where: str) -> DocumentPart:
    """A ``file`` content part: ``file_data`` (a base64 data URL) with a ``filename``, or a
    ``file_id`` of the upstream's file store."""
    file = obj(part.get("file"), f"{where}.file")
    filename = file.get("filename")
    filename = None if filename is None else string(filename, f"{where}.file.filename")
    data, file_id = file.get("file_data"), file.get("file_id")
    try:
        if data is not None:
            url = string(data, f"{where}.file.file_data")
            header, _, payload = url.partition(",")
            if not url.startswith("data:") or ";base64" not in header:
                raise invalid(
                    f"{where}.file.file_data must be a base64 data URL "
                    "('data:application/pdf;base64,...')",
                    f"{where}.file.file_data",
                )
            media = header[5:].split(";", 1)[0] or "application/pdf"
            return DocumentPart(data=payload, media_type=media, filename=filename)
        if file_id is not None:
            return DocumentPart(file_id=string(file_id, f"{where}.file.file_id"), filename=filename)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise invalid(f"{where}.file: {message}", f"{where}.file") from exc
    raise invalid(f"{where}.file needs 'file_data' or 'file_id'", f"{where}.file")


def assistant_reasoning(message: dict[str, Any], where: str) -> list[ReasoningPart]:
    """Reasoning an assistant message carries back: ``thinking_blocks`` (signed) win over the
    bare ``reasoning_content`` text, which is the same reasoning without signatures."""
    blocks = message.get("thinking_blocks")
    if blocks is not None:
        if not isinstance(blocks, list):
            raise invalid(f"{where}.thinking_blocks must be an array", f"{where}.thinking_blocks")
        parts: list[ReasoningPart] = []
        for k, raw in enumerate(blocks):
            at = f"{where}.thinking_blocks[{k}]"
            block = obj(raw, at)
            kind = block.get("type")
            if kind == "thinking":
                signature = block.get("signature")
                parts.append(
                    ThinkingPart(
                        thinking=string(block.get("thinking"), f"{at}.thinking"),
                        signature=None
                        if signature is None
                        else string(signature, f"{at}.signature") or None,
                    )
                )
            elif kind == "redacted_thinking":
                parts.append(RedactedThinkingPart(data=string(block.get("data"), f"{at}.data")))
            else:
                raise invalid(f"{at}.type is {kind!r}; use 'thinking' or 'redacted_thinking'", at)
        return parts
    text = message.get("reasoning_content")
    if text is None or text == "":
        return []
    return [ThinkingPart(thinking=string(text, f"{where}.reasoning_content"))]


def thinking_block_json(part: ReasoningPart) -> dict[str, Any]:
    if isinstance(part, RedactedThinkingPart):
        return {"type": "redacted_thinking", "data": part.data}
    return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}


def add_reasoning(message: dict[str, Any], reasoning: list[ReasoningPart]) -> None:
    """Put an answer's reasoning on its OpenAI message: ``reasoning_content`` (the thinking text
    joined) and ``thinking_blocks`` (every block, signatures and redacted data kept)."""
    message["reasoning_content"] = "".join(
        p.thinking for p in reasoning if isinstance(p, ThinkingPart)
    )
    message["thinking_blocks"] = [thinking_block_json(p) for p in reasoning]
