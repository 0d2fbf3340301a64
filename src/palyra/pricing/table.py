"""The pricing table: shipped prices overlaid with ``[pricing]`` from palyra.toml, looked up by
provider kind, model and day. A model with no price has an unknown cost, never a zero one."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from importlib import resources

from palyra.config.schema import PriceConfig, PricingConfig
from palyra.pricing.price import ModelPrice

SHIPPED_FILE = "defaults.toml"
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_Key = tuple[str | None, str, str]  # (provider id or None, kind, model)


def base_model_name(model: str) -> str:
    """A dated snapshot's model family (``gpt-4.1-mini-2025-04-14`` -> ``gpt-4.1-mini``,
    ``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5``); other names unchanged."""
    return _SNAPSHOT.sub("", model)


def _rate(value: float | None, fallback: Decimal) -> Decimal:
    # str() first: the float's shortest repr, so 0.1 is 0.1 and not 0.1000000000000000055...
    return fallback if value is None else Decimal(str(value))


def price_from_config(entry: PriceConfig, source: str) -> ModelPrice:
    """A configured (or shipped) entry with its absent rates filled in as documented."""
    base_in = Decimal(str(entry.input))
    base_out = Decimal(str(entry.output))
    write_5m = _rate(entry.cache_write_5m, base_in)
    return ModelPrice(
        kind=entry.kind,
        model=entry.model,
        provider=entry.provider,
        effective_from=entry.effective_from,
        input=base_in,
        output=base_out,
        cached_input=_rate(entry.cached_input, base_in),
        cache_write_5m=write_5m,
        cache_write_1h=_rate(entry.cache_write_1h, write_5m),
        reasoning=_rate(entry.reasoning, base_out),
        source=source,
    )


class ShippedPrices:
    """The prices in the package's data file and the day its figures were read."""

    def __init__(self, source_date: date, prices: list[ModelPrice]) -> None:
        self.source_date = source_date
        self.prices = prices


@cache
def shipped_prices() -> ShippedPrices:
    """The package's ``defaults.toml``, parsed and validated once (a test keeps it valid)."""
    text = resources.files("palyra.pricing").joinpath(SHIPPED_FILE).read_text(encoding="utf-8")
    document = tomllib.loads(text)
    entries = [PriceConfig.model_validate(item) for item in document["models"]]
    source_date = document["source_date"]
    if isinstance(source_date, str):
        source_date = date.fromisoformat(source_date)
    return ShippedPrices(source_date, [price_from_config(e, "shipped") for e in entries])


class PricingTable:
    """Prices by (provider id, kind, model), each a list ordered by ``effective_from``."""

    def __init__(self, prices: Iterable[ModelPrice]) -> None:
        by_key: dict[_Key, list[ModelPrice]] = {}
        for price in prices:
            by_key.setdefault((price.provider, price.kind, price.model), []).append(price)
        self._by_key = {k: sorted(v, key=lambda p: p.effective_from) for k, v in by_key.items()}
        self._found: dict[tuple[str, str, str | None, date], ModelPrice | None] = {}

    def prices(self) -> list[ModelPrice]:
        """Every entry, ordered by kind, model, provider and date (for ``palyra pricing``)."""
        rows = [p for entries in self._by_key.values() for p in entries]
        return sorted(rows, key=lambda p: (p.kind, p.model, p.provider or "", p.effective_from))

    def price(
        self, kind: str, model: str, *, provider: str | None = None, on: date | None = None
    ) -> ModelPrice | None:
        """The price in effect ``on`` that day (today, UTC, by default), or ``None`` (unknown).

        Tried in order: the provider's own entry for the model, the kind's entry, then both
        again for the model's family when ``model`` names a dated snapshot."""
        day = on or datetime.now(UTC).date()
        key = (kind, model, provider, day)
        if key in self._found:
            return self._found[key]
        found = None
        names = (model,) if base_model_name(model) == model else (model, base_model_name(model))
        for name in names:
            for owner in (provider, None) if provider else (None,):
                found = self._in_effect(self._by_key.get((owner, kind, name)), day)
                if found is not None:
                    break
            if found is not None:
                break
        if len(self._found) < 4096:
            self._found[key] = found
        return found

    @staticmethod
    def _in_effect(entries: list[ModelPrice] | None, day: date) -> ModelPrice | None:
        if not entries:
            return None
        current = None
        for entry in entries:
            if entry.effective_from > day:
                break
            current = entry
        return current


def pricing_table(config: PricingConfig | None = None) -> PricingTable:
    """The table a daemon uses: shipped prices (unless ``shipped = false``) with each configured
    (provider, kind, model) replacing the shipped entries of that key on every date."""
    config = config or PricingConfig()
    configured = [price_from_config(e, "palyra.toml") for e in config.models]
    replaced = {(p.provider, p.kind, p.model) for p in configured}
    shipped = shipped_prices().prices if config.shipped else []
    kept = [p for p in shipped if (p.provider, p.kind, p.model) not in replaced]
    return PricingTable([*kept, *configured])
