"""A damaged or empty SQLite file is ``StoreCorrupt`` naming the file, and is left byte-identical.

The databases are real ``palyra.db`` files written by the vault and the token store; the damage
is garbage written into a page in the middle of the file, as a failing disk or a bad copy does.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from palyra.daemon.security.tokens_store import TOKENS_SCHEMA, TokenKind, TokenStore
from palyra.store import StoreCorrupt, StoreMissing, open_store
from palyra.vault import KeyResolver, Vault

PAGE = 4096


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def closed_cleanly(db: Path) -> bool:
    return db.stat().st_size >= 8 * PAGE and not Path(f"{db}-wal").exists()


async def make_real_store(state: Path) -> Path:
    """A palyra.db with vault secrets and tokens, written by the code and closed cleanly."""
    os.mkdir(state, mode=0o700)
    store = await open_store(state_dir=state, migrations=(TOKENS_SCHEMA,))
    try:
        vault = await Vault.open(store, KeyResolver(state, environ={}))
        for n in range(60):
            await vault.put(f"global/secret-{n}", f"value-{n}-" + "x" * 300)
        tokens = TokenStore(store)
        for n in range(20):
            await tokens.create(TokenKind.CLIENT, name=f"token {n}")
    finally:
        await store.aclose()
    db = state / "palyra.db"
    assert closed_cleanly(db)
    return db


def damage_a_middle_page(db: Path) -> None:
    size = db.stat().st_size
    page = size // PAGE // 2
    with db.open("r+b") as fh:
        fh.seek(page * PAGE)
        fh.write(random.Random(7).randbytes(2000))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_names_the_file_and_the_fix(exc: StoreCorrupt, db: Path) -> None:
    message = exc.envelope.message
    assert message.startswith(f"the SQLite database {db} is damaged (")
    assert f"mv {db} {db}.damaged" in message
    assert "restore" in message and "backup" in message
    assert "\n" not in message
    assert exc.path == str(db)


async def test_a_page_damaged_in_the_middle_is_store_corrupt_and_the_file_is_untouched(
    tmp_path: Path,
) -> None:
    db = await make_real_store(tmp_path / "state")
    damage_a_middle_page(db)
    before = digest(db)
    with pytest.raises(StoreCorrupt) as err:
        await open_store(state_dir=tmp_path / "state", migrations=(TOKENS_SCHEMA,))
    assert_names_the_file_and_the_fix(err.value, db)
    assert "quick_check" in err.value.envelope.message
    assert digest(db) == before
    assert names(db.parent) == ["palyra.db", "vault.key"]


async def test_an_empty_database_file_is_not_taken_for_a_fresh_store(tmp_path: Path) -> None:
    db = tmp_path / "palyra.db"
    db.touch(mode=0o600)
    for _ in range(2):  # and it stays refused: nothing was written into it the first time
        with pytest.raises(StoreCorrupt) as err:
            await open_store(state_dir=tmp_path, migrations=(TOKENS_SCHEMA,))
        assert_names_the_file_and_the_fix(err.value, db)
        assert "the file is empty (0 bytes)" in err.value.envelope.message
        assert db.stat().st_size == 0
    assert names(tmp_path) == ["palyra.db"]


async def test_damage_met_by_a_query_after_opening_is_store_corrupt(tmp_path: Path) -> None:
    db = await make_real_store(tmp_path / "state")
    store = await open_store(state_dir=tmp_path / "state")
    try:
        damage_a_middle_page(db)
        await store.engine.dispose()  # new connections read the damaged pages from disk
        with pytest.raises(StoreCorrupt) as err:
            async with store.connect() as conn:
                for table in ("vault_secrets", "daemon_tokens", "vault_settings"):
                    await conn.execute(sa.text(f"SELECT * FROM {table}"))
                    await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))
    finally:
        await store.aclose()
    assert_names_the_file_and_the_fix(err.value, db)
    assert "malformed" in err.value.envelope.message


async def test_a_new_database_is_whole_from_the_start_and_read_only_opens_create_nothing(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with pytest.raises(StoreMissing, match=f"nothing is stored yet: the database {state}"):
        await open_store(state_dir=state, create=False)
    assert not state.exists()
    store = await open_store(state_dir=state)
    await store.aclose()
    db = state / "palyra.db"
    assert db.read_bytes()[:16] == b"SQLite format 3\x00"
    assert os.stat(db).st_mode & 0o777 == 0o600
    assert names(state) == ["palyra.db"]  # no temporary file left
    store = await open_store(state_dir=state, create=False)
    await store.aclose()
