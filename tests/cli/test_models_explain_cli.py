"""``palyra models explain``: where a request to a model or routing group would go and why, as
text and JSON, with the errors a user meets (unknown name, unknown task class)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from palyra.cli.main import app

CONFIG = """\
version = 1
[model_provider]
default_chat_model = "assistant"

[[model_provider.providers]]
id = "openai-main"
kind = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"

[[model_provider.models]]
id = "big"
provider = "openai-main"
model = "gpt-4.1"
fallbacks = ["backup"]

[[model_provider.models]]
id = "mini"
provider = "openai-main"
model = "gpt-4o-mini"
cost_tier = "low"
latency_tier = "low"

[[model_provider.models]]
id = "backup"
provider = "openai-main"
cost_tier = "premium"

[[model_provider.routing_groups]]
id = "assistant"
strategy = "task"
members = ["mini", "big"]

[[model_provider.routing_groups]]
id = "spread"
strategy = "weighted"
members = ["mini", "big"]
weights = { mini = 4 }
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALYRA_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "palyra.toml"
    path.write_text(CONFIG)
    return path


def explain(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["models", "explain", *args, "--config", str(config)])


def test_a_background_task_is_explained_with_exclusions_and_the_failover_order(
    config: Path,
) -> None:
    done = explain(config, "assistant", "--task", "summary")
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        "assistant: routing group, strategy task, task summary (from --task)",
        "  1. mini: cost low, latency low",
        "  -  big: excluded, cost standard is above the default mini's",
        "failover order:",
        "  1. mini  openai-main/gpt-4o-mini  cost low, latency low",
        "  skipped big: excluded: cost standard is above the default mini's",
        "x-palyra-route: assistant task task=summary/--task: mini (cost low, latency low); "
        "excluded big (cost standard is above the default mini's)",
    ]


def test_interactive_keeps_the_group_order_and_the_members_fallbacks_follow(
    config: Path,
) -> None:
    document = json.loads(explain(config, "assistant", "--json").stdout)
    assert document["decision"]["task"] == "interactive"
    assert document["decision"]["task_source"] == "group-default"
    assert [t["model_id"] for t in document["targets"]] == ["mini", "big", "backup"]
    assert document["targets"][2]["cost_tier"] == "premium"
    assert document["header"].startswith("assistant task task=interactive/group-default: ")


def test_a_plain_model_is_its_fallback_chain(config: Path) -> None:
    done = explain(config, "big")
    assert done.stdout.splitlines() == [
        "big: a model, not a routing group: tried first, then its fallbacks in order",
        "failover order:",
        "  1. big     openai-main/gpt-4.1  cost standard, latency standard",
        "  2. backup  openai-main/backup  cost premium, latency standard",
    ]


def test_a_weighted_group_shows_its_weights(config: Path) -> None:
    document = json.loads(explain(config, "spread", "--json").stdout)
    reasons = {c["member"]: c["reason"] for c in document["decision"]["candidates"]}
    assert reasons["mini"].endswith("weight 4 of 5 (80%)")
    assert reasons["big"].endswith("weight 1 of 5 (20%)")


def test_unknown_names_and_task_classes_are_refused(config: Path) -> None:
    missing = explain(config, "nope")
    assert missing.exit_code == 1
    assert missing.stderr.startswith(
        'error: model "nope" is not configured (known: big, mini, backup, assistant, spread)'
    )
    bad = explain(config, "assistant", "--task", "bulk")
    assert bad.exit_code == 1
    assert bad.stderr == (
        'error: --task: unknown task class "bulk" (known: interactive, background, summary, '
        "classification, extraction, vision)\n"
    )


def test_models_list_shows_the_groups(config: Path) -> None:
    listed = CliRunner().invoke(app, ["models", "list", "--config", str(config)])
    assert listed.stdout.splitlines()[-3:] == [
        "GROUP      STRATEGY  MEMBERS",
        "assistant  task      mini,big",
        "spread     weighted  mini,big",
    ]
    document = json.loads(
        CliRunner().invoke(app, ["models", "list", "--json", "--config", str(config)]).stdout
    )
    assert document["routing_groups"][1] == {
        "id": "spread",
        "strategy": "weighted",
        "members": ["mini", "big"],
    }
    assert document["models"][1]["cost_tier"] == "low"
