"""``palyra serve`` on a PostgreSQL database nobody migrated refuses to start and says what to
run; three ``palyra db upgrade`` processes started at once all succeed, each step applied once;
then a replica starts and is ready. Real processes, a PostgreSQL database of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from palyra.daemon.schemas import STORE_SCHEMAS
from replica_support import Replicas

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PALYRA = "from palyra.cli.main import main; main()"


def palyra(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PALYRA, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_refuses_an_unmigrated_postgresql_until_db_upgrade(
    postgres_database: str, tmp_path: Path
) -> None:
    config_text = f'version = 1\n[storage]\nurl = "{postgres_database}"\n'
    config = tmp_path / "palyra.toml"
    config.write_text(config_text)
    env = {**os.environ, "PALYRA_STATE_DIR": str(tmp_path / "cli-state")}
    env.pop("PALYRA_CONFIG", None)

    refused = palyra("serve", "--config", str(config), "--bind", "127.0.0.1:0", env=env)
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2, err
    assert "has no Palyra tables yet (pending: vault v0 -> v1," in err
    assert "run `palyra db upgrade` once (with the same config)" in err

    upgrades = [palyra("db", "upgrade", "--config", str(config), env=env) for _ in range(3)]
    outputs = [u.communicate(timeout=60) for u in upgrades]
    assert [u.returncode for u in upgrades] == [0, 0, 0], outputs
    applied = [ln for out, _ in outputs for ln in out.splitlines() if ln.startswith("migrated:")]
    steps = sorted(s.strip() for ln in applied for s in ln.removeprefix("migrated:").split(","))
    assert steps == sorted(f"{s.component} v0 -> v{s.latest}" for s in STORE_SCHEMAS)

    with Replicas(tmp_path / "replicas", config_text, count=1) as (replica,):
        ready = replica.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"][0]["detail"].endswith("reachable, schema up to date")
