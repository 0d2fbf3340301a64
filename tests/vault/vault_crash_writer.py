"""Subprocess for the crash test: writes versions of four secrets forever, printing each commit."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from palyra.store import open_store
from palyra.vault import KeyResolver, Vault


async def main(db: str, state: str, start: int) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    vault = await Vault.open(store, KeyResolver(Path(state), environ={}))
    i = start
    while True:
        await vault.put(f"global/s{i % 4}", f"value-{i}-" + "x" * (i % 300))
        print(i, flush=True)
        i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
