"""A writer killed with SIGKILL mid-write leaves every secret at an old or new value, never garbage."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import sqlite3
import sys
from pathlib import Path

from vault_helpers import resolver

from palyra.store import open_store
from palyra.vault import Vault

WRITER = Path(__file__).with_name("vault_crash_writer.py")
VALUE = re.compile(r"^value-(\d+)-x*$")


async def _run_writer_until_killed(db: Path, state: Path, start: int, kill_after: int) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        str(db),
        str(state),
        str(start),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        last = start - 1
        for _ in range(kill_after):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "writer exited early"
            last = int(line)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        return last
    finally:
        if proc.returncode is None:  # a failed assertion above: do not leave the writer running
            proc.kill()
            await proc.wait()


async def test_sigkilled_writer_leaves_old_or_new_values_and_a_sound_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "palyra.db"
    rng = random.Random()
    start = 0
    for _round in range(3):
        last = await _run_writer_until_killed(db, tmp_path, start, rng.randint(8, 80))
        store = await open_store(f"sqlite+aiosqlite:///{db}")
        try:
            vault = await Vault.open(store, resolver(tmp_path))
            for n in range(4):
                value = await vault.get(f"global/s{n}")
                match = VALUE.match(value)
                assert match, f"global/s{n} holds garbage"
                i = int(match.group(1))
                assert (
                    i % 4 == n
                    and start <= i <= last + 1
                    and len(value) == len(f"value-{i}-") + (i % 300)
                )
        finally:
            await store.aclose()
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        start = last + 100
