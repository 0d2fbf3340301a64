"""``palyra token create/update`` with limits and ``palyra usage``: what a user types and sees,
bad input refused naming the flag."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app
from palyra.model import Usage
from palyra.pricing import pricing_table
from palyra.routing.trail import Attempt, AttemptTrail
from palyra.store import open_store
from palyra.usage import USAGE_SCHEMA, UsageFact, UsageLedger

CONFIG = """\
version = 1

[storage]
url = "sqlite+aiosqlite:///{db}"

[model_provider]
default_chat_model = "gpt"

[[model_provider.providers]]
id = "oai"
kind = "openai"
api_key = "env:OPENAI_API_KEY"

[[model_provider.models]]
id = "gpt"
provider = "oai"
model = "gpt-4.1-mini"
aliases = ["fast"]

[[model_provider.models]]
id = "big"
provider = "oai"
model = "gpt-4.1"

[[model_provider.models]]
id = "local"
provider = "oai"
model = "my-finetune"
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PALYRA_CONFIG", raising=False)
    path = tmp_path / "palyra.toml"
    path.write_text(CONFIG.format(db=tmp_path / "palyra.db"))
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--config", str(config)])


def test_token_create_with_limits_shows_and_stores_them(config: Path) -> None:
    made = run(
        config,
        "token",
        "create",
        "--name",
        "team-a",
        "--models",
        "gpt,big",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--budget-usd-month",
        "10",
    )
    assert made.exit_code == 0, made.stderr
    assert "limits: models=gpt,big rpm=60 tpm=100000 budget_usd_month=10.0" in made.stderr
    [row] = json.loads(run(config, "token", "list", "--json").stdout)
    assert row["limits"] == {
        "models": ["gpt", "big"],
        "rpm": 60,
        "tpm": 100000,
        "budget_usd_month": 10.0,
    }
    assert "limits models=gpt,big rpm=60" in run(config, "token", "list").stdout


def test_token_update_sets_keeps_lifts_and_clears(config: Path) -> None:
    run(config, "token", "create", "--models", "gpt", "--rpm", "5")
    [row] = json.loads(run(config, "token", "list", "--json").stdout)
    token_id = row["id"]
    changed = run(config, "token", "update", token_id, "--budget-tokens-day", "5000", "--rpm", "0")
    assert changed.exit_code == 0, changed.stderr
    assert changed.stdout.strip().endswith("limits models=gpt budget_tokens_day=5000")
    cleared = run(config, "token", "update", token_id, "--clear", "--concurrency", "2")
    assert cleared.stdout.strip().endswith("limits concurrency=2")
    [row] = json.loads(run(config, "token", "list", "--json").stdout)
    assert row["limits"] == {"concurrency": 2}
    assert (
        run(config, "token", "update", token_id, "--clear").stdout.strip().endswith("limits none")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--models", "gpt,gtp"],
            "--models: gtp not configured (known: gpt, fast, big, local); see: palyra models list",
        ),
        (["--soft-ratio", "0"], "--soft-ratio: input should be greater than 0"),
        (["--admin", "--rpm", "5"], "only a client token calls models, so only it takes limits"),
    ],
)
def test_bad_limits_are_refused_naming_the_flag(
    config: Path, args: list[str], message: str
) -> None:
    result = run(config, "token", "create", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert json.loads(run(config, "token", "list", "--json").stdout) == []


def test_token_update_of_an_unknown_token_says_so(config: Path) -> None:
    run(config, "token", "create")
    result = run(config, "token", "update", "tok_nope", "--rpm", "3")
    assert result.exit_code == 1
    assert "there is no token 'tok_nope'; see: palyra token list" in result.stderr
    nothing = run(config, "token", "update", "tok_nope")
    assert "nothing to change" in nothing.stderr


def _fact(
    n: int, token: str, model: str, upstream: str, usage: Usage | None, at: float
) -> UsageFact:
    attempt = Attempt(model, "oai", upstream, None, "ok", None, 0, 0.0, 0.2, 0.0)
    return UsageFact(
        at,
        f"r{n}",
        token,
        None,
        None,
        model,
        AttemptTrail(model, 0.0, [attempt]),
        usage,
        200,
        "ok",
        0.25,
    )


def fill(config: Path, facts: list[UsageFact]) -> None:
    db = config.parent / "palyra.db"

    async def go() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{db}", migrations=(USAGE_SCHEMA,))
        ledger = UsageLedger(store, pricing_table(), {"oai": "openai"})
        for fact in facts:
            ledger.record(fact)
        await ledger.aclose()
        await store.aclose()

    asyncio.run(go())


def test_usage_by_token_and_model_adds_up_tokens_and_cost(config: Path) -> None:
    now = time.time()
    used = Usage(input_tokens=1_000_000, cached_input_tokens=500_000, output_tokens=100_000)
    fill(
        config,
        [
            _fact(1, "tok_a", "gpt", "gpt-4.1-mini", used, now),
            _fact(2, "tok_a", "gpt", "gpt-4.1-mini", used, now),
            _fact(3, "tok_b", "big", "gpt-4.1", used, now),
            _fact(4, "tok_b", "local", "my-finetune", used, now),
            _fact(
                5,
                "tok_b",
                "gpt",
                "gpt-4.1-mini",
                used.model_copy(update={"source": "estimated"}),
                now - 3 * 86400,
            ),
        ],
    )
    table = run(config, "usage", "--by", "token,model")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "token",
        "model",
        "requests",
        "failed",
        "input",
        "cached",
        "cache_write",
        "output",
        "reasoning",
        "cost_usd",
    ]
    # gpt-4.1-mini: 0.5M fresh input at 0.40, 0.5M cached at 0.10, 0.1M output at 1.60 = 0.41
    assert lines[1].split() == [
        "tok_a",
        "gpt",
        "2",
        "0",
        "2000000",
        "1000000",
        "0",
        "200000",
        "0",
        "0.820000",
    ]
    assert lines[2].split() == [
        "tok_b",
        "big",
        "1",
        "0",
        "1000000",
        "500000",
        "0",
        "100000",
        "0",
        "2.050000",
    ]
    assert lines[3].split() == [
        "tok_b",
        "gpt",
        "~",
        "1",
        "0",
        "1000000",
        "500000",
        "0",
        "100000",
        "0",
        "0.410000",
    ]
    assert lines[4].split()[-1] == "unknown"
    assert lines[-1] == "~ holds usage Palyra estimated (the provider reported none)"

    recent = json.loads(run(config, "usage", "--by", "model", "--since", "24h", "--json").stdout)
    assert [(r["model"], r["requests"], r["cost"]) for r in recent["data"]] == [
        ("big", 1, "2.05"),
        ("gpt", 2, "0.82"),
        ("local", 1, "unknown"),
    ]


def test_usage_refuses_a_bad_grouping_or_time(config: Path) -> None:
    bad = run(config, "usage", "--by", "tokne")
    assert bad.exit_code == 1
    assert (
        'cannot group by "tokne"; use one or more of: token, agent, model, provider, day'
        in bad.stderr
    )
    when = run(config, "usage", "--since", "yesterday")
    assert "since 'yesterday' is neither a span (90m, 24h, 7d) nor a date or time" in when.stderr
    assert run(config, "usage").stdout.strip() == "no usage recorded yet"
