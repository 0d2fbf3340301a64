"""``palyra config check`` and ``palyra serve`` refuse the same configs with the same words.

Each config below is one that start-up (or the first request) refused while ``check`` said OK,
or the reverse. ``check`` runs through the real Typer app; ``serve`` as a real process (so a
config that serve would wrongly accept starts a server, which the test then stops and fails).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palyra.cli.main import app

SECRET = "hunter2-Qm7Zx9"


def _provider(base_url: str, *extra: str) -> str:
    lines = "\n".join(extra)
    return (
        "[[model_provider.providers]]\n"
        'id = "local"\n'
        'kind = "openai_compatible"\n'
        f'base_url = "{base_url}"\n'
        f"{lines}\n"
        "[[model_provider.models]]\n"
        'id = "default"\n'
        'provider = "local"\n'
    )


ALLOW = "allow_private_base_url = true"
CASES: dict[str, tuple[str, str]] = {
    # name: (palyra.toml, a fragment of the one problem both must print)
    "unknown-quirk": (
        _provider("http://127.0.0.1:11434/v1", 'quirks = ["olama"]'),
        "unknown quirk 'olama' (did you mean 'ollama'?)",
    ),
    "plain-http-name-with-private-opt-in": (
        _provider("http://llm.internal.example/v1", ALLOW),
        "uses plain http",
    ),
    "plain-http-public-address-with-private-opt-in": (
        _provider("http://8.8.8.8/v1", ALLOW),
        "uses plain http",
    ),
    "octal-ipv4": (
        _provider("https://0251.0376.0251.0376/v1"),
        "not written as four decimal numbers",
    ),
    "cgnat": (_provider("https://100.64.0.1/v1"), "a CGNAT address"),
    "multicast": (_provider("https://224.0.0.251/v1"), "a multicast address"),
    "nat64": (_provider("https://[64:ff9b::a9fe:a9fe]/v1"), "a link-local address"),
    "6to4": (_provider("https://[2002:c0a8:101::]/v1"), "a private address"),
    "credentials": (
        _provider(f"https://user:{SECRET}@api.example.com/v1"),
        "credentials belong in the vault",
    ),
    "unparseable-url": (_provider("http://[::1/v1"), "is not a valid URL"),
    "redis-url": (
        '[storage]\nredis_url = "redis://cache.internal:port/0"\n',
        "redis_url cannot be parsed",
    ),
    "redis-scheme": ('[storage]\nredis_url = "http://cache.internal"\n', "redis_url has http://"),
    "storage-url": ('[storage]\nurl = "mysql://db/palyra"\n', "which Palyra does not support"),
    "nested-toml": (
        "[daemon]\ncors_origins = " + "[" * 600 + "]" * 600 + "\n",
        "nested more than 32 levels deep",
    ),
    "responses-api-on-anthropic": (
        '[[model_provider.providers]]\nid = "a"\nkind = "anthropic"\napi_key = "env:K"\n'
        '[[model_provider.models]]\nid = "default"\nprovider = "a"\napi = "responses"\n',
        "has no Responses API",
    ),
    "bind": ('[daemon]\nbind = "localhost"\n', "bind address 'localhost' is not HOST:PORT"),
    "nested-dotted-keys": (
        "[daemon]\nx" + ".y" * 40 + " = 1\n",
        "nested more than 32 levels deep",
    ),
}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALYRA_")}
    env.update(
        HOME=str(home / "home"),
        XDG_CONFIG_HOME=str(home / "xdg"),
        PALYRA_STATE_DIR=str(home / "state"),
    )
    return env


# Runs ``palyra serve --config PATH`` for each path on argv in one process (one import instead
# of one per case) and prints a JSON line per case. A config that serve wrongly accepts starts a
# server: the alarm ends the process, and the cases not yet reported fail.
SERVE_EACH = """
import contextlib, io, json, signal, sys
from palyra.cli.main import app
signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"serve started with {path}"))
for path, *bind in json.loads(sys.argv[1]):
    err = io.StringIO()
    signal.alarm(30)
    with contextlib.redirect_stderr(err):
        try:
            app(["serve", "--config", path, *bind])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:
            code, _ = -2, err.write("Traceback: " + repr(exc))
    signal.alarm(0)
    print(json.dumps({"path": path, "code": code, "err": err.getvalue()}), flush=True)
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str]]:
    """``(config file, exit code, stderr)`` of ``palyra serve`` per case."""
    home = tmp_path_factory.mktemp("serve")
    (home / "state").mkdir()
    paths = {}
    for name, (text, _) in CASES.items():
        paths[name] = home / f"{name}.toml"
        paths[name].write_text(text)
    # The bind case must use [daemon] bind; the others listen on a free port if they start.
    runs = [[str(p), *([] if n == "bind" else ["--bind", "127.0.0.1:0"])] for n, p in paths.items()]
    done = subprocess.run(
        [sys.executable, "-c", SERVE_EACH, json.dumps(runs)],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=300,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_path = {line["path"]: (line["code"], line["err"]) for line in lines}
    missing = (-1, "no result from serve: " + done.stderr[-2000:])
    return {name: (path, *by_path.get(str(path), missing)) for name, path in paths.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_check_and_serve_refuse_with_the_same_message(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    served: dict[str, tuple[Path, int, str]],
) -> None:
    path, code, err = served[case]
    for name in list(os.environ):
        if name.startswith("PALYRA_"):
            monkeypatch.delenv(name)
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])
    checked = result.stderr.splitlines()
    assert result.exit_code == 1, result.output
    assert checked[-1] == "1 problem found.", checked
    assert CASES[case][1] in checked[0]

    assert code == 1, err
    problems = [line for line in err.splitlines() if line.startswith("palyra serve: ")]
    assert problems == [f"palyra serve: {checked[0]}"], err
    assert "Traceback" not in err and "Traceback" not in result.output
    assert SECRET not in err and SECRET not in result.output
