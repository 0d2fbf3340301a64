"""``TablePrices``: the price table as routing's ``PriceSource``, for ``cheapest`` groups.

A model is compared by what a request of 1M input and 0.5M output tokens would cost at its
current price (the completion projected as half the prompt, uncached, no reasoning); a model the
table has no price for is unknown, and a ``cheapest`` group sorts it last.
"""

from __future__ import annotations

from palyra.config.schema import ModelConfig, ProviderConfig
from palyra.pricing.price import projected_cost_usd
from palyra.pricing.table import PricingTable

PROJECTED_INPUT_TOKENS = 1_000_000
PROJECTED_OUTPUT_TOKENS = 500_000


class TablePrices:
    """Prices of configured models, looked up by provider kind, upstream name and provider id."""

    def __init__(self, table: PricingTable) -> None:
        self.table = table

    def price_per_m(self, provider: ProviderConfig, model: ModelConfig) -> tuple[float | None, str]:
        price = self.table.price(provider.kind, model.upstream_model, provider=provider.id)
        if price is None:
            return None, ""
        cost = projected_cost_usd(price, PROJECTED_INPUT_TOKENS, PROJECTED_OUTPUT_TOKENS)
        note = "" if price.source == "shipped" else f", {price.source}"
        return float(cost), note
