"""Responses ``input`` items -> neutral messages (pure): messages with ``input_text`` /
``input_image`` / ``input_file`` parts, ``function_call``, ``function_call_output`` and
``reasoning`` items; any other item (a built-in tool's call or output) is kept as sent, in its
place, for a Responses upstream. An assistant's reasoning, text and the function calls after it become one
assistant turn, as the neutral contract (and both upstream APIs) expect.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from palyra.daemon.surfaces.responses.reasoning_items import reasoning_part
from palyra.daemon.surfaces.wire_checks import invalid, json_kind, obj, string
from palyra.model import (
    ContentPart,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningPart,
    Role,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from palyra.providers.openai.responses_payload import passed_item_message

_MESSAGE_ROLES = {
    "user": Role.USER,
    "system": Role.SYSTEM,
    "developer": Role.DEVELOPER,
    "assistant": Role.ASSISTANT,
}


def first_error(exc: ValidationError | ValueError) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        message = str(err["msg"]).removeprefix("Value error, ")
        return f"{loc}: {message}" if loc else message
    return str(exc)


def _text(raw: Any, where: str) -> str:
    return string(raw, where)


def _image(part: dict[str, Any], where: str) -> ImagePart:
    if part.get("file_id") is not None:
        raise invalid(
            f"{where}.file_id: Palyra has no Files API; send image_url (a URL or a data URL)",
            f"{where}.file_id",
        )
    url = string(part.get("image_url"), f"{where}.image_url")
    detail = part.get("detail")
    try:
        return ImagePart.from_data_url(url, detail=detail if detail in ("low", "high") else None)
    except (ValueError, ValidationError) as exc:
        raise invalid(f"{where}.image_url: {first_error(exc)}", f"{where}.image_url") from exc


def _document(part: dict[str, Any], where: str) -> DocumentPart:
    """An ``input_file``: inline ``file_data`` (a data URL, or bare base64 of a PDF), a
    ``file_url`` or a ``file_id`` the upstream holds."""
    filename = part.get("filename")
    fields: dict[str, Any] = {"filename": filename if isinstance(filename, str) else None}
    data = part.get("file_data")
    if data is not None:
        data = string(data, f"{where}.file_data")
        if data.startswith("data:"):
            header, _, payload = data.partition(",")
            fields["media_type"] = header[5:].split(";", 1)[0] or None
            fields["data"] = payload
        else:
            fields["media_type"], fields["data"] = "application/pdf", data
    if part.get("file_url") is not None:
        fields["url"] = string(part["file_url"], f"{where}.file_url")
    if part.get("file_id") is not None:
        fields["file_id"] = string(part["file_id"], f"{where}.file_id")
    try:
        return DocumentPart.model_validate(fields)
    except ValidationError as exc:
        raise invalid(
            f"{where}: {first_error(exc)} (send one of file_data, file_url, file_id)", where
        ) from exc


def _content(raw: Any, role: Role, where: str) -> list[ContentPart]:
    """A message's content: a string, or ``input_text`` / ``input_image`` parts (``output_text``
    and ``refusal`` in assistant turns echoed back)."""
    if isinstance(raw, str):
        return [TextPart(text=raw)]
    if not isinstance(raw, list):
        raise invalid(
            f"{where} must be a string or an array of content parts, got {json_kind(raw)}", where
        )
    parts: list[ContentPart] = []
    for j, item in enumerate(raw):
        here = f"{where}[{j}]"
        part = obj(item, here)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(text=_text(part.get("text"), f"{here}.text")))
        elif kind == "refusal" and role is Role.ASSISTANT:
            parts.append(TextPart(text=_text(part.get("refusal"), f"{here}.refusal")))
        elif kind == "input_image":
            if role is not Role.USER:
                raise invalid(f"{here}: images can only be sent in user messages", here)
            parts.append(_image(part, here))
        elif kind == "input_file":
            if role is not Role.USER:
                raise invalid(f"{here}: files can only be sent in user messages", here)
            parts.append(_document(part, here))
        else:
            raise invalid(
                f"{here} has type {kind!r}; use 'input_text' or 'input_image' "
                "('output_text' in assistant messages)",
                here,
            )
    return parts


def _call_output(raw: Any, where: str) -> str | list[Any]:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for j, item in enumerate(raw):
            part = obj(item, f"{where}[{j}]")
            if part.get("type") != "input_text":
                raise invalid(
                    f"{where}[{j}] has type {part.get('type')!r}; a function_call_output "
                    "Palyra can carry holds a string or input_text parts",
                    where,
                )
            texts.append(_text(part.get("text"), f"{where}[{j}].text"))
        return "".join(texts)
    raise invalid(f"{where} must be a string or an array of parts, got {json_kind(raw)}", where)


class _Turns:
    """Builds messages item by item: an assistant's text and the function calls after it are
    one assistant turn, as the neutral contract (and both upstream APIs) expect."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.passed: list[tuple[str, str]] = []  # (where, type) of items kept as sent

    def add(self, role: Role, parts: list[ContentPart]) -> None:
        last = self.messages[-1] if self.messages else None
        if (
            role is Role.ASSISTANT
            and last is not None
            and last.role is Role.ASSISTANT
            and last.extensions is None
            and (
                any(isinstance(p, ToolCallPart) for p in parts)
                or all(isinstance(p, ReasoningPart) for p in last.content)
            )
        ):
            self.messages[-1] = Message(role=role, content=[*last.content, *parts])
            return
        self.messages.append(Message(role=role, content=parts))


def _item(turns: _Turns, raw: Any, where: str) -> None:
    item = obj(raw, where)
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if kind == "message":
        raw_role = item.get("role")
        role = _MESSAGE_ROLES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise invalid(
                f"{where}.role is {item.get('role')!r}; use user, assistant, system or developer",
                f"{where}.role",
            )
        turns.add(role, _content(item.get("content"), role, f"{where}.content"))
    elif kind == "function_call":
        call = ToolCallPart(
            id=string(item.get("call_id"), f"{where}.call_id"),
            name=string(item.get("name"), f"{where}.name"),
            arguments=string(item.get("arguments", "{}"), f"{where}.arguments"),
        )
        turns.add(Role.ASSISTANT, [call])
    elif kind == "function_call_output":
        result = ToolResultPart(
            tool_call_id=string(item.get("call_id"), f"{where}.call_id"),
            content=_call_output(item.get("output"), f"{where}.output"),
        )
        turns.add(Role.TOOL, [result])
    elif kind == "reasoning":
        turns.add(Role.ASSISTANT, [reasoning_part(item, where)])
    elif kind == "item_reference":
        raise invalid(
            f"{where} is an item_reference; send the item itself, or chain the turn with "
            "previous_response_id",
            where,
        )
    elif isinstance(kind, str) and kind:
        # A built-in tool's call or output (web_search_call, computer_call_output, ...) or a
        # kind Palyra does not know: for a Responses upstream, as sent, in its place.
        turns.messages.append(passed_item_message(item))
        turns.passed.append((where, kind))
    else:
        raise invalid(
            f"{where} has type {kind!r}; an input item needs a type (message, function_call, "
            "function_call_output, reasoning, or a built-in tool's item)",
            f"{where}.type",
        )


def parse_input(raw: Any) -> tuple[list[Message], list[tuple[str, str]]]:
    """``input``: a string (one user message) or a list of items; with the place and type of
    each item kept as sent (only a Responses upstream reads them)."""
    if isinstance(raw, str):
        return [Message.text(Role.USER, raw)], []
    if not isinstance(raw, list):
        raise invalid(f"input must be a string or an array of items, got {json_kind(raw)}", "input")
    turns = _Turns()
    for i, item in enumerate(raw):
        _item(turns, item, f"input[{i}]")
    return turns.messages, turns.passed
