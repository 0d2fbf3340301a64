"""Prices per (provider kind, model) and the cost of an answer's usage; unknown is never 0."""

from palyra.pricing.price import (
    NANO_PER_USD,
    ModelPrice,
    cost_nanousd,
    cost_usd,
    projected_cost_usd,
    usd_from_nano,
)
from palyra.pricing.table import (
    PricingTable,
    ShippedPrices,
    base_model_name,
    price_from_config,
    pricing_table,
    shipped_prices,
)

__all__ = [
    "NANO_PER_USD",
    "ModelPrice",
    "PricingTable",
    "ShippedPrices",
    "base_model_name",
    "cost_nanousd",
    "cost_usd",
    "price_from_config",
    "pricing_table",
    "projected_cost_usd",
    "shipped_prices",
    "usd_from_nano",
]
