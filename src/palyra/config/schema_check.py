"""Validate a raw document against a pydantic schema, turning every error into a ``Finding``.

Messages never echo the input value: a misplaced secret must not end up in a terminal.
"""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from palyra.config.problems import Finding, KeyPath

M = TypeVar("M", bound=BaseModel)


def _fields_at(model: type[BaseModel], path: KeyPath) -> list[str]:
    """Field names of the (sub)model that owns the last key of ``path``."""
    current: type[BaseModel] = model
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        sub = _model_in(field.annotation)
        if sub is None:
            return []
        current = sub
    return sorted(current.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model type in ``X`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _message(model: type[BaseModel], path: KeyPath, error: Any) -> str:
    kind = error["type"]
    key = path[-1] if path else ""
    if kind == "extra_forbidden":
        known = _fields_at(model, path)
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f'did you mean "{close[0]}"?' if close else "known: " + ", ".join(known)
        return f'unknown key "{key}" ({hint}); rename or remove it'
    if kind == "missing":
        return f'required key "{key}" is missing; add it'
    text = str(error["msg"])
    return f"{text[:1].lower()}{text[1:]}; fix the value"


def check_schema(model: type[M], document: Any) -> tuple[M | None, list[Finding]]:
    """The validated model, or ``None`` and one finding per schema error (all of them)."""
    try:
        return model.model_validate(document), []
    except ValidationError as exc:
        findings = []
        for error in exc.errors(include_input=False, include_url=False):
            path: KeyPath = tuple(p for p in error["loc"] if isinstance(p, str | int))
            findings.append(Finding(path, _message(model, path, error)))
        return None, findings
