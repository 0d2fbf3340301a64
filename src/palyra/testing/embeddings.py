"""OpenAI ``/v1/embeddings``: deterministic hash vectors of the requested size (pure)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from palyra.providers.deterministic import hash_embedding
from palyra.testing.conversation import count_words
from palyra.testing.wire_errors import invalid


def _inputs(value: Any) -> list[tuple[str, int]]:
    """(text to embed, tokens) per input; token-id arrays embed their ids as words."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise invalid(
            "'input' must be a non-empty string, array of strings, or array of token arrays.",
            "input",
            "invalid_type",
        )
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = [value]
    out: list[tuple[str, int]] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item:
            out.append((item, count_words(item)))
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            out.append((" ".join(map(str, item)), len(item)))
        else:
            raise invalid(
                f"Invalid 'input[{i}]': expected a non-empty string or token array.", f"input[{i}]"
            )
    return out


def embeddings(body: Any, default_dimensions: int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", None, "missing_required_parameter")
    if "input" not in body:
        raise invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    dims = body.get("dimensions", default_dimensions)
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        raise invalid(
            f"Invalid 'dimensions': expected an integer >= 1, got {dims!r}.", "dimensions"
        )
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise invalid(
            f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
            "invalid_value",
        )
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, (text, count) in enumerate(_inputs(body["input"])):
        vector = hash_embedding(text, dims)
        tokens += count
        encoded: Any = vector
        if fmt == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
