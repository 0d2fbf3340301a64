"""Limits per client token, agent and provider: checked before a request is routed, charged
once it is answered.

Checks, in order, per limited scope: the model allowlist, the budgets (refused once spent; a
USD budget also refuses a model whose price is unknown, whose cost could not be charged), the
concurrency, tokens per minute, then requests per minute (last, so a refused request takes no
request slot). Every check is O(1). A request with no limited scope costs one ``if``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from palyra.config.schema import LimitSpec
from palyra.model import ErrorEnvelope, FailureClass, PalyraError
from palyra.pricing import NANO_PER_USD
from palyra.usage.periods import Period, iso, period_bounds
from palyra.usage.windows import Windows

log = logging.getLogger("palyra.usage")

ScopeKind = Literal["token", "agent", "provider"]
WINDOW_S = 60.0
BUDGET_STATUS = 402
"""Budget exhaustion: 402 Payment Required, so SDKs (which retry 429s) do not retry it."""
_ADVERB = {"day": "daily", "month": "monthly"}
_SCOPE_WORDS = {"token": "client token", "agent": "agent", "provider": "provider"}
Seed = Callable[[ScopeKind, str, float], Awaitable[tuple[int, int]]]
"""(scope, id, period start) -> (tokens, nano-USD) spent since then, read from the ledger."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One limited party a request is charged to."""

    kind: ScopeKind
    id: str
    spec: LimitSpec

    @property
    def words(self) -> str:
        return f'{_SCOPE_WORDS[self.kind]} "{self.id}"'

    def key(self, *parts: str) -> str:
        return ":".join((self.kind, self.id, *parts))


@dataclass(frozen=True, slots=True)
class _Budget:
    metric: Literal["tokens", "usd"]
    period: Period
    limit: int  # tokens, or nano-USD
    name: str


def budgets_of(spec: LimitSpec) -> list[_Budget]:
    found = []
    if spec.budget_tokens_day is not None:
        found.append(_Budget("tokens", "day", spec.budget_tokens_day, "budget_tokens_day"))
    if spec.budget_tokens_month is not None:
        found.append(_Budget("tokens", "month", spec.budget_tokens_month, "budget_tokens_month"))
    if spec.budget_usd_day is not None:
        found.append(_Budget("usd", "day", _nano(spec.budget_usd_day), "budget_usd_day"))
    if spec.budget_usd_month is not None:
        found.append(_Budget("usd", "month", _nano(spec.budget_usd_month), "budget_usd_month"))
    return found


def _nano(usd: float) -> int:
    return int(Decimal(str(usd)) * NANO_PER_USD)


def _shown(budget: _Budget, amount: int) -> str:
    if budget.metric == "tokens":
        return f"{amount} tokens"
    usd = Decimal(amount) / NANO_PER_USD
    if usd == 0 or usd >= Decimal("0.01"):
        return f"{usd:.2f} USD"
    return f"{format(usd.normalize(), 'f')} USD"  # a budget of cents' fractions, shown whole


@dataclass
class Admission:
    """A request let through: the scopes it is charged to and the warnings it carries."""

    scopes: Sequence[Scope]
    now: float
    warnings: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)  # concurrency keys held
    settled: bool = False


class Limiter:
    """Checks and charges limits in ``windows`` (per process, or shared through Redis)."""

    def __init__(self, windows: Windows, seed: Seed, on_soft: Callable[[Scope, str], None]):
        self.windows = windows
        self._seed = seed
        self._on_soft = on_soft
        self._in_flight: dict[str, int] = {}
        self._warned: set[str] = set()

    async def admit(
        self,
        scopes: Sequence[Scope],
        *,
        model: str,
        model_names: Sequence[str],
        priced: bool,
        now: float,
    ) -> Admission:
        """Let the request through or raise a :class:`PalyraError` naming the limit and when it
        resets. ``model_names`` are the names the model answers to (its id and aliases)."""
        admission = Admission(scopes, now)
        for scope in scopes:
            spec = scope.spec
            if spec.models is not None and not any(n in spec.models for n in model_names):
                raise PalyraError.of(
                    FailureClass.PERMISSION_DENIED,
                    f'{scope.words} may not use model "{model}" (allowed: '
                    f"{', '.join(spec.models) or 'none'})",
                    http_status=403,
                    code="model_not_allowed",
                    param="model",
                )
            for budget in budgets_of(spec):
                await self._check_budget(scope, budget, admission, priced=priced, model=model)
        for scope in scopes:
            if scope.spec.concurrency is not None:
                key = scope.key("concurrency")
                if self._in_flight.get(key, 0) >= scope.spec.concurrency:
                    raise _rate_limited(
                        scope,
                        "concurrency",
                        f"has {scope.spec.concurrency} requests in flight, its concurrency "
                        "limit; it frees up as soon as one of them ends",
                        1.0,
                        now,
                    )
            if scope.spec.tpm is not None:
                taken = await self.windows.take(scope.key("tpm"), scope.spec.tpm, 0, now, WINDOW_S)
                if not taken.admitted:
                    raise _rate_limited(
                        scope,
                        "tpm",
                        f"used {int(taken.total)} tokens in the last minute, its tpm limit "
                        f"is {scope.spec.tpm}",
                        taken.retry_after_s,
                        now,
                    )
        for scope in scopes:
            if scope.spec.rpm is not None:
                taken = await self.windows.take(scope.key("rpm"), scope.spec.rpm, 1, now, WINDOW_S)
                if not taken.admitted:
                    raise _rate_limited(
                        scope,
                        "rpm",
                        f"made {int(taken.total)} requests in the last minute, its rpm limit "
                        f"is {scope.spec.rpm}",
                        taken.retry_after_s,
                        now,
                    )
        for scope in scopes:
            if scope.spec.concurrency is not None:
                key = scope.key("concurrency")
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
                admission.holds.append(key)
        return admission

    async def _check_budget(
        self, scope: Scope, budget: _Budget, admission: Admission, *, priced: bool, model: str
    ) -> None:
        now = admission.now
        label, start, end = period_bounds(budget.period, now)
        if budget.metric == "usd" and not priced:
            raise PalyraError.of(
                FailureClass.PERMISSION_DENIED,
                f'{scope.words} has a USD budget ({budget.name}) and model "{model}" has no '
                "price, so its cost could not be charged; add the model to [[pricing.models]] "
                "in palyra.toml, or use a priced model",
                http_status=403,
                code="model_not_priced",
                param="model",
            )
        spent = await self._spent(scope, budget, label, start, end)
        if spent >= budget.limit:
            raise PalyraError(
                ErrorEnvelope.of(
                    FailureClass.QUOTA_EXHAUSTED,
                    f"{scope.words} has used its {_ADVERB[budget.period]} budget ({budget.name}) of "
                    f"{_shown(budget, budget.limit)}: {_shown(budget, spent)} spent; it resets "
                    f"at {iso(end)} (in {int(end - now)} s)",
                    http_status=BUDGET_STATUS,
                    code="budget_exhausted",
                    retry_after_s=end - now,
                )
            )
        if spent >= budget.limit * scope.spec.soft_ratio:
            share = spent / budget.limit
            warning = (
                f"{scope.kind}={scope.id} {budget.name} {_shown(budget, spent)} of "
                f"{_shown(budget, budget.limit)} ({share:.0%}), resets {iso(end)}"
            )
            admission.warnings.append(warning)
            warned = scope.key(budget.name, label)
            if warned not in self._warned:
                if len(self._warned) > 10_000:
                    self._warned.clear()
                self._warned.add(warned)
                log.warning("budget soft limit passed: %s", warning)
            self._on_soft(scope, budget.name)

    async def _spent(
        self, scope: Scope, budget: _Budget, label: str, start: float, end: float
    ) -> int:
        key = scope.key(budget.metric, label)
        total = await self.windows.period_total(key)
        if total is not None:
            return total
        tokens, nano = await self._seed(scope.kind, scope.id, start)
        return await self.windows.period_seed(
            key, tokens if budget.metric == "tokens" else nano, end
        )

    async def settle(
        self,
        admission: Admission,
        *,
        tokens: int,
        cost_nanousd: int | None,
        extra: Sequence[Scope] = (),
        now: float,
    ) -> None:
        """Charge an answered (or failed) request to its scopes; frees its concurrency."""
        if admission.settled:
            return
        admission.settled = True
        for key in admission.holds:
            left = self._in_flight.get(key, 1) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)
        for scope in [*admission.scopes, *extra]:
            spec = scope.spec
            if spec.tpm is not None and tokens:
                await self.windows.add(scope.key("tpm"), tokens, now, WINDOW_S)
            for budget in budgets_of(spec):
                amount = tokens if budget.metric == "tokens" else cost_nanousd or 0
                if not amount:
                    continue
                label, start, end = period_bounds(budget.period, admission.now)
                await self._spent(scope, budget, label, start, end)  # seeded before adding
                await self.windows.period_add(scope.key(budget.metric, label), amount, end)


def _rate_limited(scope: Scope, limit: str, what: str, retry_s: float, now: float) -> PalyraError:
    retry_s = max(retry_s, 0.001)
    return PalyraError(
        ErrorEnvelope.of(
            FailureClass.RATE_LIMITED,
            f"{scope.words} {what} ({limit} limit); retry after {retry_s:.1f} s, at "
            f"{iso(now + retry_s)}",
            http_status=429,
            code=f"{limit}_limit_exceeded",
            retry_after_s=retry_s,
        )
    )
