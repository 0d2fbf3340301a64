"""A model's price and what one answer's usage costs at it: pure arithmetic, exact decimals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from palyra.model import Usage

NANO_PER_USD = 1_000_000_000
_PER_MILLION = Decimal(1_000_000)
_NANO = Decimal(NANO_PER_USD)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens for one (provider kind, model), from ``effective_from`` on.

    ``provider`` is set when the price belongs to one provider id only; ``source`` says where
    it came from (``shipped`` or ``palyra.toml``)."""

    kind: str
    model: str
    effective_from: date
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    reasoning: Decimal
    provider: str | None = None
    source: str = "shipped"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "model": self.model,
            "provider": self.provider,
            "effective_from": self.effective_from.isoformat(),
            "input": str(self.input),
            "output": str(self.output),
            "cached_input": str(self.cached_input),
            "cache_write_5m": str(self.cache_write_5m),
            "cache_write_1h": str(self.cache_write_1h),
            "reasoning": str(self.reasoning),
            "source": self.source,
        }


def cost_usd(usage: Usage, price: ModelPrice) -> Decimal:
    """What ``usage`` costs at ``price``, in USD.

    The neutral usage counts all input in ``input_tokens`` (cache reads and writes within it)
    and reasoning within ``output_tokens``, so each part is charged once at its own rate.
    Cache writes the upstream reported as one-hour ones are charged at the 1-hour rate, the
    rest (and all of them when it sent no split) at the 5-minute rate."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_creation_input_tokens, usage.input_tokens - cached)
    long_lived = min(usage.cache_creation_1h_input_tokens or 0, written)
    fresh = usage.input_tokens - cached - written
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    visible = usage.output_tokens - reasoning
    total = (
        fresh * price.input
        + cached * price.cached_input
        + (written - long_lived) * price.cache_write_5m
        + long_lived * price.cache_write_1h
        + visible * price.output
        + reasoning * price.reasoning
    )
    return total / _PER_MILLION


def cost_nanousd(usage: Usage, price: ModelPrice) -> int:
    """:func:`cost_usd` in whole nano-USD (1e-9), the unit the ledger stores and sums exactly.

    In integers (pico-USD per token) when every rate is a whole number of them, as every
    real price is: the ledger's writer prices each request, and decimals cost five times more."""
    rates = _pico_rates(price)
    if rates is None:
        return int((cost_usd(usage, price) * _NANO).to_integral_value(ROUND_HALF_UP))
    total_in = usage.input_tokens
    cached = min(usage.cached_input_tokens, total_in)
    written = min(usage.cache_creation_input_tokens, total_in - cached)
    long_lived = min(usage.cache_creation_1h_input_tokens or 0, written)
    out = usage.output_tokens
    reasoning = min(usage.reasoning_tokens, out)
    pico = (
        (total_in - cached - written) * rates[0]
        + cached * rates[1]
        + (written - long_lived) * rates[2]
        + long_lived * rates[3]
        + (out - reasoning) * rates[4]
        + reasoning * rates[5]
    )
    return (pico + 500) // 1000


@lru_cache(maxsize=1024)
def _pico_rates(price: ModelPrice) -> tuple[int, int, int, int, int, int] | None:
    """The rates in pico-USD per token (USD per million times 10^6), or None when one is not
    a whole number of them."""
    found = []
    for rate in (
        price.input,
        price.cached_input,
        price.cache_write_5m,
        price.cache_write_1h,
        price.output,
        price.reasoning,
    ):
        pico = rate * _PER_MILLION
        if pico != pico.to_integral_value():
            return None
        found.append(int(pico))
    return (found[0], found[1], found[2], found[3], found[4], found[5])


def projected_cost_usd(price: ModelPrice, input_tokens: int, output_tokens: int) -> Decimal:
    """The cost of an answer not yet given (uncached input, no reasoning): what a router
    compares candidates by."""
    return (input_tokens * price.input + output_tokens * price.output) / _PER_MILLION


def usd_from_nano(nano: int) -> Decimal:
    return Decimal(nano) / _NANO
