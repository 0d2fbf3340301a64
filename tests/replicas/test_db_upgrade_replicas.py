"""``palyra serve`` on a PostgreSQL database nobody migrated refuses to start and says what to
run; three ``palyra db upgrade`` processes started at once all succeed, the steps applied once;
then the replica starts and is ready. Real processes, a real PostgreSQL database of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from palyra.daemon.schemas import STORE_SCHEMAS
from replica_support import PALYRA, palyra_env, replicas, run_palyra

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_serve_refuses_an_unmigrated_postgresql_until_db_upgrade(
    postgres_database: str, tmp_path: Path
) -> None:
    config = tmp_path / "palyra.toml"
    config.write_text(f'version = 1\n[storage]\nurl = "{postgres_database}"\n')
    env = palyra_env(tmp_path / "state")

    refused = run_palyra("serve", "--config", str(config), "--bind", "127.0.0.1:0", env=env)
    assert refused.returncode == 2, refused.stderr
    assert "has no Palyra tables yet (pending: vault v0 -> v1," in refused.stderr
    assert "run `palyra db upgrade` once (with the same config)" in refused.stderr

    upgrades = [
        subprocess.Popen(
            [sys.executable, "-c", PALYRA, "db", "upgrade", "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [u.communicate(timeout=60) for u in upgrades]
    assert [u.returncode for u in upgrades] == [0, 0, 0], outputs
    applied = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("migrated:")
    ]
    steps = sorted(s.strip() for line in applied for s in line.removeprefix("migrated:").split(","))
    assert steps == sorted(f"{s.component} v0 -> v{s.latest}" for s in STORE_SCHEMAS)

    with replicas(tmp_path) as group:
        replica = group.start("r1", config, env=env)
        ready = replica.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"][0]["detail"].endswith("reachable, schema up to date")
