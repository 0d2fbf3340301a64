"""The model routes' success response: a JSON body already encoded, headers laid out directly."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

JSON = "application/json"


class JSONBytes(Response):
    """A 200 with an orjson-encoded body: the same status, body and raw headers (in the same
    order) as ``Response(body, media_type="application/json", headers=headers)``, without
    Starlette's generic ``render``/``init_headers`` steps, which are paid on every model call."""

    media_type = JSON

    def __init__(self, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        raw = (
            [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            if headers
            else []
        )
        raw.append((b"content-length", b"%d" % len(body)))
        raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw
