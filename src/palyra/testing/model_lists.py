"""``GET /v1/models`` in both shapes: one path, answered by the dialect of the request (pure)."""

from __future__ import annotations

from typing import Any

CREATED = 1_735_689_600  # 2025-01-01T00:00:00Z, fixed so listings are stable
CREATED_AT = "2025-01-01T00:00:00Z"


def openai_models(ids: tuple[str, ...]) -> dict[str, Any]:
    data = [
        {"id": i, "object": "model", "created": CREATED, "owned_by": "palyra-fake"} for i in ids
    ]
    return {"object": "list", "data": data}


def anthropic_models(ids: tuple[str, ...]) -> dict[str, Any]:
    data = [
        {
            "type": "model",
            "id": i,
            "display_name": i.replace("-", " ").title(),
            "created_at": CREATED_AT,
        }
        for i in ids
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }
