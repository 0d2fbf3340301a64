"""Routing groups and tiers in palyra.toml: each mistake with the exact message a user sees, from
``palyra config check`` (the loader) and from ``palyra serve`` alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from palyra.cli.main import app
from palyra.config import ConfigError, load_config
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    ProviderConfig,
    RoutingGroupConfig,
)
from palyra.model import PalyraError
from palyra.routing import ModelRegistry

NO_HOME = {"HOME": "/nonexistent-palyra-home"}

# Sixteen lines; groups appended after a blank line start on line 18.
BASE = """\
[model_provider]
default_chat_model = "mini"
[[model_provider.providers]]
id = "cheap-co"
kind = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"

[[model_provider.models]]
id = "mini"
provider = "cheap-co"
cost_tier = "low"

[[model_provider.models]]
id = "big"
provider = "cheap-co"
aliases = ["large"]
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def problems(groups: str) -> list[str]:
    Path("palyra.toml").write_text(BASE + "\n" + groups)
    with pytest.raises(ConfigError) as caught:
        load_config(Path("palyra.toml"), NO_HOME)
    return [str(p) for p in caught.value.problems]


def group(body: str) -> str:
    return f"[[model_provider.routing_groups]]\n{body}"


def test_a_valid_group_loads_with_its_members_and_tiers() -> None:
    Path("palyra.toml").write_text(
        BASE + "\n" + group('id = "smart"\nstrategy = "task"\nmembers = ["big", "mini"]\n')
    )
    mp = load_config(Path("palyra.toml"), NO_HOME).config.model_provider
    assert mp.routing_groups[0].members == ["big", "mini"]
    assert mp.models[0].cost_tier == "low" and mp.models[1].cost_tier is None


def test_unknown_member_names_the_known_models_and_groups() -> None:
    assert problems(group('id = "smart"\nmembers = ["mini", "gpt5"]\n')) == [
        "palyra.toml:20: model_provider.routing_groups[0].members[1]: routing group "
        '"smart" lists member "gpt5", which is neither a model nor a routing group '
        "(models: big, mini; groups: smart)"
    ]


def test_groups_that_contain_each_other_are_a_cycle() -> None:
    text = group('id = "one"\nmembers = ["mini", "two"]\n') + group(
        'id = "two"\nmembers = ["one"]\n'
    )
    assert problems(text) == [
        "palyra.toml:20: model_provider.routing_groups[0].members: routing groups contain each "
        "other: one -> two -> one; remove one of these members"
    ]


def test_bad_weights_are_refused_with_the_reason() -> None:
    assert problems(
        group('id = "w"\nstrategy = "weighted"\nmembers = ["mini", "big"]\nweights = {mini = 0}\n')
    ) == [
        "palyra.toml:22: model_provider.routing_groups[0].weights.mini: input should be greater "
        "than 0; fix the value"
    ]
    assert problems(
        group('id = "w"\nstrategy = "weighted"\nmembers = ["mini"]\nweights = {big = 2}\n')
    ) == [
        'palyra.toml:22: model_provider.routing_groups[0].weights.big: routing group "w" '
        'gives a weight to "big", which is not one of its members (mini); weigh members only'
    ]
    assert problems(group('id = "w"\nmembers = ["mini"]\nweights = {mini = 2}\n')) == [
        'palyra.toml:21: model_provider.routing_groups[0].weights: routing group "w" sets '
        'weights, but its strategy is "ordered", which draws none; set strategy = "weighted" '
        "or remove weights"
    ]


def test_unknown_task_class_and_strategy_are_named() -> None:
    assert problems(
        group('id = "t"\nstrategy = "task"\nmembers = ["mini"]\ndefault_task = "bulk"\n')
    ) == [
        "palyra.toml:22: model_provider.routing_groups[0].default_task: value error, unknown "
        'task class "bulk" (known: interactive, background, summary, classification, '
        "extraction, vision); fix the value"
    ]
    found = problems(group('id = "t"\nstrategy = "fastest"\nmembers = ["mini"]\n'))
    assert found == [
        "palyra.toml:20: model_provider.routing_groups[0].strategy: input should be 'ordered', "
        "'weighted', 'least_busy', 'lowest_latency', 'cheapest' or 'task'; fix the value"
    ]


def test_group_id_clashing_with_a_model_name_and_a_repeated_member() -> None:
    assert problems(group('id = "large"\nmembers = ["mini"]\n')) == [
        'palyra.toml:19: model_provider.routing_groups[0].id: routing group id "large" is '
        'already an alias of model "big"; each name a client sends must mean one thing, so '
        "rename the group",
    ]
    assert problems(group('id = "g"\nmembers = ["mini", "mini"]\n')) == [
        "palyra.toml:20: model_provider.routing_groups[0].members: value error, member "
        '"mini" is listed twice; list each member once; fix the value',
    ]


def test_least_busy_needs_counted_leases() -> None:
    assert problems(group('id = "lb"\nstrategy = "least_busy"\nmembers = ["mini"]\n')) == [
        'palyra.toml:21: model_provider.routing_groups[0].members[0]: routing group "lb" is '
        'least_busy, but member "mini" is on provider "cheap-co", which sets no '
        "max_concurrency, so its load is not counted; set max_concurrency on that provider or "
        "pick another strategy"
    ]


def test_tiers_and_profile_selection_are_validated() -> None:
    Path("palyra.toml").write_text(
        BASE.replace('cost_tier = "low"', 'cost_tier = "cheap"').replace(
            'kind = "openai_compatible"', 'kind = "openai_compatible"\nprofile_selection = "lru"'
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config(Path("palyra.toml"), NO_HOME)
    assert [str(p) for p in caught.value.problems] == [
        "palyra.toml:6: model_provider.providers[0].profile_selection: input should be "
        "'ordered', 'round_robin' or 'rate_limit'; fix the value",
        "palyra.toml:12: model_provider.models[0].cost_tier: input should be 'low', 'standard' "
        "or 'premium'; fix the value",
    ]


def test_config_check_refuses_a_bad_group_and_exits_1() -> None:
    Path("palyra.toml").write_text(BASE + "\n" + group('id = "g"\nmembers = ["nope"]\n'))
    result = CliRunner().invoke(app, ["config", "check", "--config", "palyra.toml"], env=NO_HOME)
    assert result.exit_code == 1
    assert 'routing group "g" lists member "nope"' in result.output


def test_a_config_built_in_code_is_refused_by_the_registry_the_same_way() -> None:
    cfg = ModelProviderRegistryConfig(
        providers=[ProviderConfig(id="p", kind="deterministic")],
        models=[ModelConfig(id="m", provider="p")],
        routing_groups=[RoutingGroupConfig(id="g", members=["m", "ghost"])],
    )
    with pytest.raises(PalyraError) as caught:
        ModelRegistry.from_config(cfg)
    assert caught.value.envelope.message == (
        'routing group "g" lists member "ghost", which is neither a model nor a routing group '
        "(models: m; groups: g) (in [[model_provider.routing_groups]] of palyra.toml)"
    )
