"""Metering: what the daemon and agent runs call around each routed request.

``admit`` before routing (limits; nothing to do for a caller with no limits), ``settle`` once
the answer is in (charges the limits), ``record`` as the request ends (queues its ledger fact;
never blocks, never raises).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from palyra.config.schema import LimitsConfig, LimitSpec, ModelConfig, ProviderConfig
from palyra.model import Usage
from palyra.pricing import PricingTable, cost_nanousd
from palyra.routing.trail import AttemptTrail
from palyra.usage.facts import UsageFact
from palyra.usage.ledger import UsageLedger
from palyra.usage.limiter import Admission, Limiter, Scope, ScopeKind, Seed
from palyra.usage.windows import Windows

Resolve = Callable[[str], ModelConfig]


class Metering:
    """See the module docstring."""

    def __init__(
        self,
        *,
        limits: LimitsConfig,
        providers: list[ProviderConfig],
        resolve: Resolve,
        pricing: PricingTable,
        windows: Windows,
        seed: Seed,
        ledger: UsageLedger | None = None,
        on_soft: Callable[[Scope, str], None] = lambda scope, name: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.pricing = pricing
        self.limiter = Limiter(windows, seed, on_soft)
        self._resolve = resolve
        self._kinds = {p.id: p.kind for p in providers}
        self._agents = {k: v for k, v in limits.agents.items() if not v.is_empty()}
        self._providers = {k: v for k, v in limits.providers.items() if not v.is_empty()}
        self._clock = clock
        self.config_limited = bool(self._agents or self._providers)
        """Whether palyra.toml limits any agent or provider (else only tokens can be limited)."""

    @property
    def provider_kinds(self) -> Mapping[str, str]:
        return self._kinds

    def scopes(
        self, token_id: str | None, token_limits: LimitSpec | None, agent_id: str | None
    ) -> list[Scope]:
        """The limited parties of a caller (the provider's come in ``admit``)."""
        found = []
        if token_id is not None and token_limits is not None:
            found.append(Scope("token", token_id, token_limits))
        if agent_id is not None:
            spec = self._agents.get(agent_id)
            if spec is not None:
                found.append(Scope("agent", agent_id, spec))
        return found

    async def admit(
        self,
        *,
        token_id: str | None,
        token_limits: LimitSpec | None,
        agent_id: str | None,
        model: str,
    ) -> Admission | None:
        """Check the caller's limits for a request naming ``model``; None when nothing limits
        it (the common case: one dict lookup). Raises the limit's error otherwise."""
        scopes = self.scopes(token_id, token_limits, agent_id)
        entry = None
        if self._providers:
            entry = self._resolve(model)
            spec = self._providers.get(entry.provider)
            if spec is not None:
                scopes.append(Scope("provider", entry.provider, spec))
        if not scopes:
            return None
        entry = entry or self._resolve(model)
        priced = True
        if any(s.spec.budget_usd_day or s.spec.budget_usd_month for s in scopes):
            kind = self._kinds.get(entry.provider, "")
            priced = (
                self.pricing.price(kind, entry.upstream_model, provider=entry.provider) is not None
            )
        return await self.limiter.admit(
            scopes,
            model=model,
            model_names=(entry.id, *entry.aliases, model),
            priced=priced,
            now=self._clock(),
        )

    async def settle(
        self, admission: Admission, usage: Usage | None, trail: AttemptTrail | None
    ) -> None:
        """Charge what the request used to its scopes (and to the provider that answered,
        when that provider has limits of its own)."""
        tokens = 0 if usage is None else usage.input_tokens + usage.output_tokens
        cost = None
        extra: list[Scope] = []
        last = trail.attempts[-1] if trail is not None and trail.attempts else None
        if last is not None and last.outcome == "ok":
            kind = self._kinds.get(last.provider_id)
            if usage is not None and kind is not None:
                day = datetime.fromtimestamp(admission.now, UTC).date()
                price = self.pricing.price(
                    kind, last.upstream_model, provider=last.provider_id, on=day
                )
                cost = None if price is None else cost_nanousd(usage, price)
            spec = self._providers.get(last.provider_id)
            admitted = {(s.kind, s.id) for s in admission.scopes}
            if spec is not None and ("provider", last.provider_id) not in admitted:
                extra.append(Scope("provider", last.provider_id, spec))
        await self.limiter.settle(
            admission, tokens=tokens, cost_nanousd=cost, extra=extra, now=self._clock()
        )

    def record(self, fact: UsageFact) -> None:
        ledger = self.ledger
        if ledger is not None:
            ledger.record(fact)


def scope_label(kind: ScopeKind, ident: str) -> str:
    return f"{kind}:{ident}"
