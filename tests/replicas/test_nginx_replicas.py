"""The README's deployment, run: deploy/nginx.conf (its ports replaced by free ones) in front of
three ``palyra serve`` replicas on one database, driven with the official openai SDK. Requests
spread over the replicas, streams arrive event by event, and a replica killed with SIGKILL
costs no request. Skipped where nginx is not installed (``.ci/run`` installs it)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from replica_support import Replica, palyra_env, replicas, wait_for

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)"),
]

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
TOKEN = "plk_nginx-replicas-client-token-0123456789"
REPLICA_PORTS = ("7142", "7143", "7144")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nginx_config(tmp_path: Path) -> tuple[Path, int, list[int]]:
    """The repo's file with each replica's and the listener's port replaced, nothing else."""
    text = CONFIG.read_text()
    ports = [free_port() for _ in REPLICA_PORTS]
    for default, port in zip(REPLICA_PORTS, ports, strict=True):
        assert f"server 127.0.0.1:{default} " in text
        text = text.replace(f"server 127.0.0.1:{default} ", f"server 127.0.0.1:{port} ")
    listen = free_port()
    assert "listen 127.0.0.1:8080;" in text
    text = text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen};")
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path, listen, ports


@pytest.fixture
def nginx(tmp_path: Path, nginx_config: tuple[Path, int, list[int]]) -> Iterator[str]:
    path, listen, _ = nginx_config
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    assert NGINX is not None
    globals_ = f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log;"
    check = subprocess.run(
        [NGINX, "-t", "-p", str(prefix), "-c", str(path), "-g", globals_],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(path), "-g", globals_],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", listen)) == 0

    try:
        wait_for("nginx to listen", listening, timeout_s=10)
        yield f"http://127.0.0.1:{listen}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def requests_served(replica: Replica) -> float:
    text = replica.get("/metrics", TOKEN).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("palyra_requests_total{") and 'route="/v1/chat/completions"' in line
    )


def test_three_replicas_behind_nginx_share_the_load_and_survive_a_kill(
    tmp_path: Path, nginx_config: tuple[Path, int, list[int]], nginx: str
) -> None:
    _, _, ports = nginx_config
    config = tmp_path / "palyra.toml"
    config.write_text(
        "version = 1\n[daemon]\n"
        'client_tokens = ["env:PALYRA_CLIENT_TOKEN"]\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path}/shared.db"\n'
    )
    with replicas(tmp_path) as group:
        started = []
        for index, port in enumerate(ports):
            state = tmp_path / f"r{index}"
            state.mkdir(mode=0o700)
            env = palyra_env(state, {"PALYRA_CLIENT_TOKEN": TOKEN})
            started.append(
                group.start(f"r{index}", config, env=env, bind=f"127.0.0.1:{port}", wait=False)
            )
        for replica in started:
            group.wait_serving(replica)

        client = openai.OpenAI(base_url=f"{nginx}/v1", api_key=TOKEN, max_retries=0)
        for n in range(30):
            answer = client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": f"hello {n}"}]
            )
            assert answer.choices[0].message.content == f"You said: hello {n}"
        served = [requests_served(r) for r in started]
        assert sum(served) == 30
        assert sum(1 for s in served if s > 0) >= 2, served  # not all on one replica

        stream = client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "one two three four five six"}],
            stream=True,
        )
        chunks = [
            c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
        ]
        assert len(chunks) > 1 and "".join(chunks) == "You said: one two three four five six"

        ready = client.with_options(base_url=nginx).get("/readyz", cast_to=object)
        assert isinstance(ready, dict) and ready["status"] == "ready"

        started[0].kill9()
        for n in range(20):
            answer = client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": f"after {n}"}]
            )
            assert answer.choices[0].message.content == f"You said: after {n}"
        assert sum(requests_served(r) for r in started[1:]) >= 20
    assert re.search(r"palyra serving on http://127\.0\.0\.1:\d+/v1", started[1].log_text())
