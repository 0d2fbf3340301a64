"""``palyra chat``: one prompt to a running daemon over its OpenAI surface, answer to the terminal.

It speaks plain HTTP (httpx2) and decodes the stream with our own SSE decoder, so the CLI needs
no OpenAI SDK at run time and exercises the daemon exactly as any other client would.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx2
import orjson
import typer

from palyra.cli.common import ConfigOpt, fail
from palyra.config.loader import load_config
from palyra.config.problems import ConfigError
from palyra.providers.upstream.sse import SSEDecoder

TOKEN_ENV = "PALYRA_CLIENT_TOKEN"
TIMEOUT_S = 300.0

# Magic bytes -> media type for the image formats chat models accept.
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class ChatFailure(Exception):
    """A failure to show the user as is (already names the thing and the fix)."""


def sniff_image_type(data: bytes) -> str | None:
    """The image media type from the file's first bytes; ``None`` when it is not one we send."""
    for magic, media_type in _IMAGE_SIGNATURES:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_part(path: Path) -> dict[str, Any]:
    """An OpenAI ``image_url`` content part carrying the file inline as a data URL."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChatFailure(f"cannot read image {path}: {exc.strerror}") from exc
    media_type = sniff_image_type(data)
    if media_type is None:
        raise ChatFailure(
            f"{path} is not a PNG, JPEG, GIF or WebP image (by its first bytes); "
            "convert it to one of those"
        )
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{encoded}"}}


def build_chat_payload(
    prompt: str,
    *,
    model: str,
    system: str | None,
    images: list[dict[str, Any]],
    stream: bool,
) -> dict[str, Any]:
    """The chat-completions request body; plain text content unless images are attached."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    content: str | list[dict[str, Any]] = prompt
    if images:
        content = [{"type": "text", "text": prompt}, *images]
    messages.append({"role": "user", "content": content})
    payload: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    return payload


def error_message(status: int, body: bytes) -> str:
    """The daemon's error message from an OpenAI-shaped error body, else the raw status."""
    try:
        document = orjson.loads(body)
        message = document["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()[:500]
        return f"HTTP {status}" + (f": {text}" if text else "")
    return f"HTTP {status}: {message}"


def stream_deltas(lines: Iterator[bytes]) -> Iterator[str]:
    """The text of each chunk of an OpenAI chat stream; raises ``ChatFailure`` on an error event."""
    decoder = SSEDecoder()
    for chunk in lines:
        for event in decoder.feed(chunk):
            if event.data == "[DONE]":
                return
            document = orjson.loads(event.data)
            if "error" in document:
                message = (document.get("error") or {}).get("message", "unknown error")
                raise ChatFailure(f"the stream ended with an error: {message}")
            for choice in document.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text


def _default_url(config_path: Path | None) -> str:
    try:
        bind = load_config(config_path).config.daemon.bind
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    return f"http://{bind}/v1"


def _token_file() -> Path:
    from palyra.daemon.security.startup_tokens import local_token_path
    from palyra.paths import state_dir

    return local_token_path(state_dir(create=False))


def _token(token_env: str) -> tuple[str | None, str | None]:
    """The client token and where it came from: ``$token_env``, else the local token file."""
    from palyra.daemon.security.startup_tokens import read_local_client_token

    from_env = os.environ.get(token_env)
    if from_env:
        return from_env, f"${token_env}"
    token_file = _token_file()
    token = read_local_client_token(token_file.parent)
    return token, (str(token_file) if token else None)


def refused_hint(token_env: str, sent_from: str | None, token_file: Path) -> str:
    """What to do about a 401: which token was sent (never the token) and where one comes from."""
    how = (
        f"set {token_env} to a client token (create one with `palyra token create`), or start "
        f"the daemon on loopback so it writes {token_file}, which chat reads when {token_env} is "
        "unset"
    )
    if sent_from is None:
        return f"no client token was sent ({token_env} is not set, {token_file} is absent); {how}"
    return f"the daemon refused the client token from {sent_from}; {how}"


def _default_model(config_path: Path | None) -> str:
    try:
        return load_config(config_path).config.model_provider.default_chat_model
    except ConfigError:
        return "default"


def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Model id or alias (default: the config's).")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="A system prompt.")] = None,
    image: Annotated[
        list[Path] | None, typer.Option("--image", help="Attach an image (repeatable).")
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream/--no-stream", help="Print tokens as they arrive.")
    ] = True,
    url: Annotated[
        str | None, typer.Option("--url", help="Daemon base URL (default: http://<bind>/v1).")
    ] = None,
    token_env: Annotated[
        str, typer.Option("--token-env", help="Environment variable holding the client token.")
    ] = TOKEN_ENV,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole response JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Send one prompt to the running daemon and print the answer."""
    base = (url or _default_url(config)).rstrip("/")
    try:
        images = [image_part(path) for path in image or []]
    except ChatFailure as exc:
        fail(str(exc))
    payload = build_chat_payload(
        prompt,
        model=model or _default_model(config),
        system=system,
        images=images,
        stream=stream and not as_json,
    )
    headers = {"content-type": "application/json"}
    token, token_source = _token(token_env)
    if token:
        headers["authorization"] = f"Bearer {token}"
    endpoint = f"{base}/chat/completions"
    try:
        with (
            httpx2.Client(timeout=TIMEOUT_S) as client,
            client.stream("POST", endpoint, content=orjson.dumps(payload), headers=headers) as r,
        ):
            if r.status_code == 401:
                hint = refused_hint(token_env, token_source, _token_file())
                fail(f"{error_message(r.status_code, r.read())}\n{hint}")
            if r.status_code >= 400:
                fail(error_message(r.status_code, r.read()))
            if not payload["stream"]:
                _print_whole(r.read(), as_json=as_json)
                return
            for text in stream_deltas(r.iter_bytes()):
                typer.echo(text, nl=False)
            typer.echo("")
    except httpx2.ConnectError:
        fail(f"no daemon at {base}; start one with `palyra serve` (or pass --url)")
    except httpx2.TransportError as exc:
        fail(f"the connection to {base} failed ({exc.__class__.__name__}: {exc})")
    except ChatFailure as exc:
        typer.echo("")
        fail(str(exc))


def _print_whole(body: bytes, *, as_json: bool) -> None:
    document = orjson.loads(body)
    if as_json:
        typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    for choice in document.get("choices") or []:
        typer.echo((choice.get("message") or {}).get("content") or "")
