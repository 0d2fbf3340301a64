"""Shared test helpers for vault tests: cheap KDF settings and a plaintext scanner."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from pathlib import Path

from palyra.vault import Argon2Params, KeyResolver

CHEAP_ARGON2 = Argon2Params(iterations=1, memory_cost_kib=64, lanes=1)


def new_key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def resolver(state_dir: Path, **environ: str) -> KeyResolver:
    return KeyResolver(state_dir=state_dir, environ=environ, argon2=CHEAP_ARGON2)


def plaintext_hits(paths: Iterable[Path], secrets: Iterable[str]) -> list[str]:
    """Every (file, secret) pair where the secret's bytes appear in the file's raw bytes."""
    hits = []
    files = [p for root in paths for p in ([root] if root.is_file() else root.rglob("*"))]
    for path in files:
        if not path.is_file():
            continue
        data = path.read_bytes()
        hits += [f"{path}: {s[:4]}..." for s in secrets if s.encode() in data]
    return hits
