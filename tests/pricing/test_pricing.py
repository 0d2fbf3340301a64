"""Pricing: the shipped table is valid and dated, overrides replace it, snapshots find their
family, an unknown model has no price (never 0), and each usage part is charged at its rate."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from palyra.config import ConfigError, load_config
from palyra.config.schema import PriceConfig, PricingConfig
from palyra.model import Usage
from palyra.pricing import (
    base_model_name,
    cost_nanousd,
    cost_usd,
    pricing_table,
    projected_cost_usd,
    shipped_prices,
)

NO_HOME = {"HOME": "/nonexistent-palyra-home"}


def test_shipped_table_is_dated_and_covers_both_vendors() -> None:
    shipped = shipped_prices()
    assert shipped.source_date >= date(2025, 1, 1)
    kinds = {p.kind for p in shipped.prices}
    assert kinds == {"openai", "anthropic"}
    for price in shipped.prices:
        assert price.effective_from <= shipped.source_date
        assert price.input >= 0 and price.output >= 0
        assert price.cached_input <= price.input
    names = {(p.kind, p.model) for p in shipped.prices}
    assert len(names) == len(shipped.prices), "one shipped entry per model"
    assert ("openai", "gpt-4.1-mini") in names
    assert ("anthropic", "claude-sonnet-4-5") in names


def test_anthropic_prices_carry_both_cache_write_lifetimes() -> None:
    price = pricing_table().price("anthropic", "claude-sonnet-4-5")
    assert price is not None
    assert (price.input, price.cache_write_5m, price.cache_write_1h, price.cached_input) == (
        Decimal("3.0"),
        Decimal("3.75"),
        Decimal("6.0"),
        Decimal("0.3"),
    )
    assert price.reasoning == price.output


def test_unknown_model_has_no_price_rather_than_zero() -> None:
    table = pricing_table()
    assert table.price("openai", "my-finetune") is None
    assert table.price("openai_compatible", "gpt-4.1-mini") is None
    assert table.price("deterministic", "deterministic") is None


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("gpt-4.1", "gpt-4.1"),
        ("o3", "o3"),
    ],
)
def test_dated_snapshots_are_priced_as_their_family(name: str, family: str) -> None:
    assert base_model_name(name) == family
    kind = "anthropic" if name.startswith("claude") else "openai"
    price = pricing_table().price(kind, name)
    assert price is not None and price.model == family


def test_every_part_of_the_usage_is_charged_at_its_own_rate() -> None:
    price = pricing_table().price("anthropic", "claude-sonnet-4-5")
    assert price is not None
    # 10_000 input of which 6_000 cache reads and 2_000 cache writes; 1_000 output.
    usage = Usage(
        input_tokens=10_000,
        cached_input_tokens=6_000,
        cache_creation_input_tokens=2_000,
        output_tokens=1_000,
    )
    expected = (
        Decimal(2_000) * 3 + Decimal(6_000) * Decimal("0.3") + Decimal(2_000) * Decimal("3.75")
    ) / 1_000_000 + Decimal(1_000) * 15 / 1_000_000
    assert cost_usd(usage, price) == expected
    assert cost_nanousd(usage, price) == 30_300_000


def test_one_hour_cache_writes_are_charged_at_the_one_hour_rate() -> None:
    price = pricing_table().price("anthropic", "claude-sonnet-4-5")
    assert price is not None
    # 4_000 input: 1_000 written for 5 minutes, 2_000 for an hour, 1_000 fresh.
    usage = Usage(
        input_tokens=4_000,
        cache_creation_input_tokens=3_000,
        cache_creation_5m_input_tokens=1_000,
        cache_creation_1h_input_tokens=2_000,
    )
    expected = (Decimal(1_000) * 3 + Decimal(1_000) * Decimal("3.75") + Decimal(2_000) * 6) / 10**6
    assert cost_usd(usage, price) == expected
    assert cost_nanousd(usage, price) == 18_750_000


def test_reasoning_is_charged_once_within_the_output() -> None:
    entry = PriceConfig(
        kind="openai", model="r", effective_from=date(2025, 1, 1), input=1, output=4, reasoning=8
    )
    table = pricing_table(PricingConfig(models=[entry]))
    price = table.price("openai", "r")
    assert price is not None
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, reasoning_tokens=250_000)
    assert cost_usd(usage, price) == Decimal(1) + Decimal("0.75") * 4 + Decimal("0.25") * 8


def test_configured_entry_replaces_the_shipped_one_on_every_date() -> None:
    entry = PriceConfig(
        kind="openai",
        model="gpt-4.1-mini",
        effective_from=date(2020, 1, 1),
        input=0.5,
        output=2,
    )
    table = pricing_table(PricingConfig(models=[entry]))
    price = table.price("openai", "gpt-4.1-mini", on=date(2026, 1, 1))
    assert price is not None
    assert (price.input, price.output, price.source) == (Decimal("0.5"), Decimal(2), "palyra.toml")
    assert price.cached_input == Decimal("0.5"), "an absent cached rate is the input rate"


def test_effective_dates_pick_the_price_of_the_day() -> None:
    old = PriceConfig(kind="openai", model="m", effective_from=date(2025, 1, 1), input=1, output=2)
    new = PriceConfig(kind="openai", model="m", effective_from=date(2025, 6, 1), input=3, output=4)
    table = pricing_table(PricingConfig(shipped=False, models=[new, old]))
    assert table.price("openai", "m", on=date(2024, 12, 31)) is None
    first = table.price("openai", "m", on=date(2025, 5, 31))
    second = table.price("openai", "m", on=date(2025, 6, 1))
    assert first is not None and first.input == 1
    assert second is not None and second.input == 3
    assert table.price("openai", "gpt-4.1", on=date(2025, 6, 1)) is None, "shipped = false"


def test_a_provider_entry_wins_over_the_kind_entry() -> None:
    kind_wide = PriceConfig(
        kind="openai_compatible", model="llama", effective_from=date(2025, 1, 1), input=1, output=1
    )
    local = PriceConfig(
        kind="openai_compatible",
        model="llama",
        provider="gpu-box",
        effective_from=date(2025, 1, 1),
        input=0,
        output=0,
    )
    table = pricing_table(PricingConfig(models=[kind_wide, local]))
    mine = table.price("openai_compatible", "llama", provider="gpu-box")
    other = table.price("openai_compatible", "llama", provider="rented")
    assert mine is not None and mine.input == 0, "a configured 0 is a real price"
    assert other is not None and other.input == 1


def test_projected_cost_orders_cheap_before_expensive() -> None:
    table = pricing_table()
    nano = table.price("openai", "gpt-4.1-nano")
    opus = table.price("anthropic", "claude-opus-4-1")
    assert nano is not None and opus is not None
    assert projected_cost_usd(nano, 1000, 500) < projected_cost_usd(opus, 1000, 500)


@given(
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
)
def test_cost_never_negative_and_never_above_the_dearest_rate(
    inp: int, cached: int, written: int, out: int, reasoning: int
) -> None:
    price = pricing_table().price("anthropic", "claude-opus-4-1")
    assert price is not None
    usage = Usage(
        input_tokens=inp,
        cached_input_tokens=cached,
        cache_creation_input_tokens=written,
        output_tokens=out,
        reasoning_tokens=reasoning,
    )
    cost = cost_usd(usage, price)
    dearest_in = max(price.input, price.cached_input, price.cache_write_5m)
    assert 0 <= cost <= (inp * dearest_in + out * max(price.output, price.reasoning)) / 10**6


def _check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "palyra.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, NO_HOME)
    return [str(p) for p in caught.value.problems]


PROVIDER = """\
[[model_provider.providers]]
id = "gpu-box"
kind = "openai_compatible"
base_url = "http://127.0.0.1:11434/v1"
allow_private_base_url = true

[[model_provider.models]]
id = "default"
provider = "gpu-box"
model = "llama"
"""


def test_config_check_names_each_bad_pricing_entry(tmp_path: Path) -> None:
    found = _check(
        tmp_path,
        PROVIDER
        + """
[[pricing.models]]
kind = "openai"
model = "llama"
provider = "gpu-box"
effective_from = 2025-01-01
input = 1
output = -2

[[pricing.models]]
kind = "openai_compatible"
model = "llama"
provider = "gpu-bx"
effective_from = "someday"
input = 1
output = 1
""",
    )
    label = str(tmp_path / "palyra.toml")
    assert found == [
        f'{label}:13: pricing.models[0].kind: is "openai" but provider "gpu-box" is of kind '
        '"openai_compatible"; make them agree',
        f"{label}:18: pricing.models[0].output: input should be greater than or equal to 0; "
        "fix the value",
        f'{label}:23: pricing.models[1].provider: names provider "gpu-bx", which does not exist '
        "(known: gpu-box); fix it or drop provider to price the kind",
        f"{label}:24: pricing.models[1].effective_from: input should be a valid date or datetime, "
        "input is too short; fix the value",
    ]


def test_config_check_refuses_two_prices_for_one_model_and_day(tmp_path: Path) -> None:
    entry = """
[[pricing.models]]
kind = "openai"
model = "gpt-4.1"
effective_from = 2025-01-01
input = 1
output = 1
"""
    found = _check(tmp_path, PROVIDER + entry + entry)
    assert len(found) == 1
    assert found[0].endswith(
        'pricing.models[1]: prices openai model "gpt-4.1" from 2025-01-01 again '
        "(pricing.models[0] already does); keep one entry per model and day"
    )


def test_valid_pricing_section_loads(tmp_path: Path) -> None:
    path = tmp_path / "palyra.toml"
    path.write_text(
        PROVIDER
        + """
[pricing]
shipped = true

[[pricing.models]]
kind = "openai_compatible"
model = "llama"
provider = "gpu-box"
effective_from = 2025-01-01
input = 0
output = 0
"""
    )
    config = load_config(path, NO_HOME).config
    table = pricing_table(config.pricing)
    price = table.price("openai_compatible", "llama", provider="gpu-box")
    assert price is not None and price.output == 0


def test_config_check_names_bad_limits(tmp_path: Path) -> None:
    found = _check(
        tmp_path,
        PROVIDER
        + """
[limits.providers.gpu-bx]
rpm = 10

[limits.agents.nightly]
models = ["default", "defualt"]
budget_usd_day = 0
""",
    )
    label = str(tmp_path / "palyra.toml")
    assert found == [
        f'{label}:12: limits.providers.gpu-bx: names provider "gpu-bx", which does not exist '
        "(known: gpu-box); fix the id",
        f'{label}:16: limits.agents.nightly.models[1]: names model "defualt", which is not a '
        "configured model, alias or routing group (known: default)",
        f"{label}:17: limits.agents.nightly.budget_usd_day: input should be greater than 0; "
        "fix the value",
    ]


@given(
    st.integers(0, 10**8),
    st.integers(0, 10**8),
    st.integers(0, 10**8),
    st.integers(0, 10**8),
    st.integers(0, 10**8),
    st.sampled_from([p.model for p in shipped_prices().prices]),
    st.integers(0, 10**8),
)
def test_integer_cost_equals_the_decimal_cost_rounded(
    inp: int, cached: int, written: int, out: int, reasoning: int, model: str, hour: int
) -> None:
    price = next(p for p in shipped_prices().prices if p.model == model)
    usage = Usage(
        input_tokens=inp,
        cached_input_tokens=cached,
        cache_creation_input_tokens=written,
        cache_creation_1h_input_tokens=min(hour, written),
        output_tokens=out,
        reasoning_tokens=reasoning,
    )
    exact = cost_usd(usage, price) * 10**9
    assert cost_nanousd(usage, price) == int(exact.to_integral_value(ROUND_HALF_UP))


def test_a_rate_finer_than_a_pico_usd_per_token_is_still_priced_exactly() -> None:
    entry = PriceConfig(
        kind="openai", model="odd", effective_from=date(2025, 1, 1), input=0.0000001, output=0
    )
    price = pricing_table(PricingConfig(models=[entry])).price("openai", "odd")
    assert price is not None
    assert cost_nanousd(Usage(input_tokens=10**13), price) == 1_000_000_000  # 1 USD
