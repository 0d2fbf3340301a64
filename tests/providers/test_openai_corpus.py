"""The shared corpus loads from any test and its names are unique.

``tests/`` is not on ``sys.path`` under pytest's default import mode, so tests load the corpus by
file path (``tests/corpus/__init__.py`` still lets tools import ``tests.corpus.chat_requests``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from palyra.model import ChatRequest

CORPUS_FILE = Path(__file__).resolve().parents[1] / "corpus" / "chat_requests.py"


def load_chat_corpus() -> list[tuple[str, ChatRequest]]:
    spec = importlib.util.spec_from_file_location("palyra_chat_corpus", CORPUS_FILE)
    assert spec is not None and spec.loader is not None, f"cannot load {CORPUS_FILE}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    corpus: list[tuple[str, ChatRequest]] = module.CHAT_CORPUS
    return corpus


CHAT_CORPUS = load_chat_corpus()


def test_corpus_has_at_least_fifty_uniquely_named_requests() -> None:
    names = [name for name, _ in CHAT_CORPUS]
    assert len(names) >= 50
    assert len(set(names)) == len(names)


def test_corpus_covers_streaming_and_non_streaming() -> None:
    assert {request.stream for _, request in CHAT_CORPUS} == {True, False}
