"""The README's deployment, run: deploy/nginx.conf (its ports replaced by free ones) in front of
three ``palyra serve`` replicas on one database, driven with the official openai SDK. Requests
spread over the replicas, streams arrive event by event, and a replica killed with SIGKILL
costs no request. Skipped where nginx is not installed (``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from replica_support import CLIENT_TOKEN, Replica, Replicas

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)"),
]

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
REPLICA_PORTS = ("7142", "7143", "7144")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_of(replica: Replica) -> int:
    return int(replica.url.rsplit(":", 1)[1])


def nginx_config(tmp_path: Path, ports: list[int]) -> tuple[Path, int]:
    """The repo's file with each replica's and the listener's port replaced, nothing else."""
    text = CONFIG.read_text()
    for default, port in zip(REPLICA_PORTS, ports, strict=True):
        assert f"server 127.0.0.1:{default} " in text
        text = text.replace(f"server 127.0.0.1:{default} ", f"server 127.0.0.1:{port} ")
    listen = free_port()
    assert "listen 127.0.0.1:8080;" in text
    text = text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen};")
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path, listen


@contextmanager
def nginx(tmp_path: Path, ports: list[int]) -> Iterator[str]:
    path, listen = nginx_config(tmp_path, ports)
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
        deadline = time.monotonic() + 10
        while not listening():
            assert process.poll() is None and time.monotonic() < deadline, "nginx did not listen"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{listen}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def requests_served(replica: Replica) -> float:
    text = replica.metrics()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("palyra_requests_total{") and 'route="/v1/chat/completions"' in line
    )


def test_three_replicas_behind_nginx_share_the_load_and_survive_a_kill(tmp_path: Path) -> None:
    config = (
        "version = 1\n[daemon]\n"
        'client_tokens = ["env:PALYRA_CLIENT_TOKEN"]\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path}/shared.db"\n'
    )
    with (
        Replicas(tmp_path / "replicas", config, count=3) as started,
        nginx(tmp_path, [port_of(r) for r in started]) as balancer,
    ):
        client = openai.OpenAI(base_url=f"{balancer}/v1", api_key=CLIENT_TOKEN, max_retries=0)
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

        ready = client.with_options(base_url=balancer).get("/readyz", cast_to=object)
        assert isinstance(ready, dict) and ready["status"] == "ready"

        started[0].process.kill()
        started[0].process.wait(timeout=10)
        for n in range(20):
            answer = client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": f"after {n}"}]
            )
            assert answer.choices[0].message.content == f"You said: after {n}"
        assert sum(requests_served(r) for r in started[1:]) >= 20
