"""Effort levels and thinking budgets: the defaults, a model's own table, and the way back."""

from __future__ import annotations

from pathlib import Path

import pytest

from palyra.config import ConfigError, load_config
from palyra.config.schema import ModelConfig, ProviderConfig
from palyra.model import FailureClass, PalyraError, ReasoningConfig
from palyra.model.reasoning import DEFAULT_EFFORT_BUDGETS, effort_budgets, effort_for_budget
from palyra.providers.openai.payload import reasoning_effort
from palyra.providers.registry import model_budgets


@pytest.mark.parametrize(
    ("budget", "level"),
    [
        (1, "minimal"),
        (1024, "minimal"),
        (1025, "low"),
        (8192, "medium"),
        (9000, "high"),
        (32768, "xhigh"),
        (10**6, "xhigh"),
    ],
)
def test_a_budget_is_read_as_the_lowest_level_that_covers_it(budget: int, level: str) -> None:
    assert effort_for_budget(budget) == level


def test_a_models_own_table_moves_the_levels() -> None:
    table = effort_budgets({"high": 4000})
    assert table["high"] == 4000 and table["medium"] == DEFAULT_EFFORT_BUDGETS["medium"]
    assert effort_for_budget(3000, table) == "high"  # high (4000) now covers it before medium


@pytest.mark.parametrize(
    ("reasoning", "effort"),
    [
        (ReasoningConfig(effort="low"), "low"),
        (ReasoningConfig(effort="max"), "xhigh"),
        (ReasoningConfig(effort="none"), "none"),
        (ReasoningConfig(budget_tokens=2000), "low"),
        (ReasoningConfig(enabled=False), None),
        (ReasoningConfig(adaptive=True), None),
    ],
)
def test_openai_reasoning_effort_for_each_configuration(
    reasoning: ReasoningConfig, effort: str | None
) -> None:
    assert reasoning_effort(reasoning) == effort


def _toml(budgets: str) -> str:
    return (
        '[model_provider]\ndefault_chat_model = "claude"\n\n'
        '[[model_provider.providers]]\nid = "an"\nkind = "anthropic"\n\n'
        f'[[model_provider.models]]\nid = "claude"\nprovider = "an"\nreasoning_budgets = {budgets}\n'
    )


def test_reasoning_budgets_load_from_palyra_toml(tmp_path: Path) -> None:
    path = tmp_path / "palyra.toml"
    path.write_text(_toml("{low = 1500, high = 20000}"))
    model = load_config(path, {"HOME": str(tmp_path)}).config.model_provider.models[0]
    assert model.reasoning_budgets == {"low": 1500, "high": 20000}


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        (
            "{low = 100}",
            "reasoning_budgets.low is 100; Anthropic needs a thinking budget of at least 1024",
        ),
        ("{none = 2000}", "reasoning_budgets.none"),
        ("{huge = 2000}", "reasoning_budgets.huge"),
    ],
)
def test_bad_reasoning_budgets_name_the_level(tmp_path: Path, budgets: str, message: str) -> None:
    path = tmp_path / "palyra.toml"
    path.write_text(_toml(budgets))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HOME": str(tmp_path)})
    text = "\n".join(str(p) for p in caught.value.problems)
    assert message in text


def test_two_models_of_one_upstream_model_must_agree_on_budgets() -> None:
    provider = ProviderConfig(id="an", kind="anthropic")
    same = [
        ModelConfig(id="a", provider="an", model="claude-x", reasoning_budgets={"low": 2000}),
        ModelConfig(id="b", provider="an", model="claude-x", reasoning_budgets={"low": 2000}),
    ]
    assert model_budgets(provider, same)["claude-x"]["low"] == 2000
    differ = [
        *same[:1],
        ModelConfig(id="b", provider="an", model="claude-x", reasoning_budgets={"low": 3000}),
    ]
    with pytest.raises(PalyraError) as info:
        model_budgets(provider, differ)
    assert info.value.failure_class is FailureClass.CONFIG
    assert 'models "a" and "b"' in info.value.envelope.message
