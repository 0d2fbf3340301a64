"""One "replica" of the refresh race: opens the shared store and vault the way the daemon does,
says ready, waits for "go" on stdin, asks for the profile's access token (refreshing it when
due), and prints what it got as a SHA-256 digest (never the token)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import httpx2

from palyra.auth import AuthProfileRegistry
from palyra.auth.refresh import OAuthRefresher
from palyra.store import open_store
from palyra.vault import KeyResolver, Vault


async def main(url: str, profile_id: str, state_dir: Path) -> None:
    store = await open_store(url)
    keys = KeyResolver(state_dir, environ=dict(os.environ))
    vault = await Vault.open(store, keys)
    registry = AuthProfileRegistry(store, vault)
    async with httpx2.AsyncClient(timeout=30) as client:
        refresher = OAuthRefresher(registry, vault, client=client, clock=time.time)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the test's "go"
        result: dict[str, str] = {}
        try:
            token = await refresher.access_token(profile_id)
            result["token_sha256"] = hashlib.sha256(token.encode()).hexdigest()
        except Exception as exc:  # reported to the test, which fails on it
            result["error"] = f"{type(exc).__name__}: {exc}"
    await store.aclose()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
