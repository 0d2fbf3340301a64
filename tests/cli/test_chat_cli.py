"""``palyra chat`` through typer's CliRunner against a real daemon (uvicorn on a free port)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from palyra.cli.chat import build_chat_payload, sniff_image_type, stream_deltas
from palyra.cli.main import app
from palyra.config.schema import default_config
from palyra.daemon import AppState, create_app
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.startup_tokens import write_private_file
from palyra.daemon.security.tokens_store import TokenKind, generate_token

# A 1x1 PNG: the smallest real image the daemon will accept.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class Daemon:
    url: str
    token: str


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    monkeypatch.delenv("PALYRA_CLIENT_TOKEN", raising=False)


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """The default-config daemon (deterministic provider) accepting one client token."""
    token = generate_token(TokenKind.CLIENT)
    state = AppState.from_config(default_config())
    state.auth = Authenticator(fixed_tokens={token: TokenKind.CLIENT})
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), lifespan="on", log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.005)
    yield Daemon(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", token)
    server.should_exit = True
    thread.join(timeout=10)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port


def chat(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["chat", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_streamed_answer_is_printed_with_token_from_env(daemon: Daemon) -> None:
    code, out, err = chat(
        "hello there", "--url", daemon.url, env={"PALYRA_CLIENT_TOKEN": daemon.token}
    )
    assert (code, err) == (0, "")
    assert out == "You said: hello there\n"


def test_non_streamed_answer_with_system_prompt_and_custom_token_env(daemon: Daemon) -> None:
    code, out, _ = chat(
        "ping",
        "--no-stream",
        "--system",
        "be brief",
        "--url",
        daemon.url,
        "--token-env",
        "MY_TOKEN",
        env={"MY_TOKEN": daemon.token},
    )
    assert code == 0
    assert out == "You said: ping\n"


def test_token_falls_back_to_the_local_quickstart_file(daemon: Daemon, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    write_private_file(state / "client_token", daemon.token)
    code, out, _ = chat("from file", "--url", daemon.url)
    assert code == 0
    assert out == "You said: from file\n"


def test_json_prints_the_whole_response(daemon: Daemon) -> None:
    code, out, _ = chat(
        "hi", "--json", "--url", daemon.url, env={"PALYRA_CLIENT_TOKEN": daemon.token}
    )
    assert code == 0
    document = json.loads(out)
    assert document["object"] == "chat.completion"
    assert document["choices"][0]["message"]["content"] == "You said: hi"
    assert document["usage"]["prompt_tokens"] > 0


def test_image_is_sent_inline_with_its_sniffed_media_type(daemon: Daemon, tmp_path: Path) -> None:
    image = tmp_path / "pixel.dat"  # the extension is wrong on purpose: the bytes decide
    image.write_bytes(PNG)
    code, out, _ = chat(
        "what is this",
        "--image",
        str(image),
        "--url",
        daemon.url,
        env={"PALYRA_CLIENT_TOKEN": daemon.token},
    )
    assert code == 0
    assert out == f"You said: what is this\n[1 image: image/png, {len(PNG)} bytes]\n"


def test_unknown_model_prints_the_daemon_error_and_exits_1(daemon: Daemon) -> None:
    code, out, err = chat(
        "hi", "--model", "no-such-model", "--url", daemon.url,
        env={"PALYRA_CLIENT_TOKEN": daemon.token},
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert err.startswith("error: HTTP 404: ")
    assert "no-such-model" in err


def test_missing_token_reports_the_daemon_refusal(daemon: Daemon, tmp_path: Path) -> None:
    code, _, err = chat("hi", "--url", daemon.url)
    assert code == 1
    assert err.startswith("error: HTTP 401: ")
    token_file = tmp_path / "state" / "client_token"
    assert (
        f"no client token was sent (PALYRA_CLIENT_TOKEN is not set, {token_file} is absent); "
        "set PALYRA_CLIENT_TOKEN to a client token (create one with `palyra token create`)"
    ) in err


def test_a_refused_token_says_where_it_came_from_never_what_it_is(
    daemon: Daemon, tmp_path: Path
) -> None:
    wrong = generate_token(TokenKind.CLIENT)
    code, _, err = chat("hi", "--url", daemon.url, env={"PALYRA_CLIENT_TOKEN": wrong})
    assert code == 1
    assert (
        "the daemon refused the client token from $PALYRA_CLIENT_TOKEN; set PALYRA_CLIENT_TOKEN"
        in err
    )
    token_file = tmp_path / "state" / "client_token"
    token_file.parent.mkdir(mode=0o700)
    write_private_file(token_file, wrong)
    code, _, err = chat("hi", "--url", daemon.url)
    assert code == 1
    assert f"the daemon refused the client token from {token_file};" in err
    assert wrong not in err


def test_no_daemon_running_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, out, err = chat("hi", "--url", url)
    assert code == 1
    assert out == ""
    assert err == f"error: no daemon at {url}; start one with `palyra serve` (or pass --url)\n"


def test_default_url_comes_from_the_configured_bind(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "palyra.toml"
    config.write_text(f'version = 1\n[daemon]\nbind = "127.0.0.1:{port}"\n', encoding="utf-8")
    code, _, err = chat("hi", "--config", str(config))
    assert code == 1
    assert f"no daemon at http://127.0.0.1:{port}/v1;" in err


def test_a_file_that_is_not_an_image_is_refused_before_sending(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("just text", encoding="utf-8")
    code, _, err = chat("hi", "--image", str(text), "--url", "http://127.0.0.1:9/v1")
    assert code == 1
    assert f"{text} is not a PNG, JPEG, GIF or WebP image" in err


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"GIF87a\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_sniff_image_type_reads_magic_bytes(head: bytes, expected: str | None) -> None:
    assert sniff_image_type(head) == expected


def test_payload_uses_content_parts_only_with_images() -> None:
    plain = build_chat_payload("q", model="m", system="s", images=[], stream=True)
    assert plain["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
    ]
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    with_image = build_chat_payload("q", model="m", system=None, images=[part], stream=False)
    assert with_image["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "q"}, part]}
    ]
    assert with_image["stream"] is False


def test_stream_deltas_survive_chunks_split_mid_event() -> None:
    wire = (
        b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
        b"data: [DONE]\n\n"
        b'data: {"choices":[{"delta":{"content":"after done"}}]}\n\n'
    )
    chunks = [wire[i : i + 7] for i in range(0, len(wire), 7)]
    assert "".join(stream_deltas(iter(chunks))) == "Hello"
