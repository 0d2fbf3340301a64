"""``JSONBytes`` is Starlette's JSON ``Response`` laid out directly: same status, body, headers."""

from __future__ import annotations

import orjson
import pytest
from starlette.responses import Response

from palyra.daemon.server.json_response import JSON, JSONBytes


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"x-palyra-model": "default"},
        {"X-Palyra-Model": "gpt-4o-mini", "request-id": "req_abc"},
        {"x-palyra-model": "m\u00e9"},  # latin-1, as Starlette encodes header values
    ],
)
@pytest.mark.parametrize("body", [b"{}", orjson.dumps({"id": "x", "choices": [1, 2, 3]}), b""])
def test_the_same_response_as_starlettes_json_response(
    headers: dict[str, str] | None, body: bytes
) -> None:
    ours = JSONBytes(body, headers)
    theirs = Response(body, media_type=JSON, headers=headers)
    assert ours.status_code == theirs.status_code == 200
    assert ours.body == theirs.body
    assert ours.raw_headers == theirs.raw_headers
    assert ours.background is None and ours.media_type == JSON
    assert ours.headers["content-length"] == str(len(body))
