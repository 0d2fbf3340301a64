"""The api-key probe's error never carries the key, even when the upstream echoes it back."""

from __future__ import annotations

import asyncio

import pytest

from palyra.auth.api_key import validate_api_key
from palyra.model import PalyraError

KEY = "9c1d7e3a5b2f4c6e8a0d1b3f5e7c9a2d"  # hex, like an Azure key: no pattern matches it


async def test_a_redirect_whose_location_repeats_the_key_is_reported_redacted() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nlocation: https://elsewhere.example/"
            + KEY.encode()
            + b"/models\r\ncontent-length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(PalyraError) as info:
        await validate_api_key(
            "openai", f"http://127.0.0.1:{port}/v1", KEY, allow_private=True, profile="p"
        )
    server.close()
    message = info.value.envelope.message
    assert "redirect (HTTP 302 to https://elsewhere.example/[REDACTED]/models)" in message
    assert KEY not in str(info.value)
