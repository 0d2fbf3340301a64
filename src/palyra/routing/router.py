"""The router: one retry loop, breakers, credential rotation, leases and failover under one deadline.

Decisions come from ``ErrorEnvelope`` fields only. Retries and failovers share a single request
deadline; each attempt gets ``min(request_timeout, time left)``. When another candidate can take
the request, a failed target is left at once instead of retried (a healthy fallback answers now,
a retry answers later at best); the retry budget is spent on the last place left to go.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, Protocol, TypeVar

from palyra.config.schema import ModelProviderRegistryConfig, ProviderConfig
from palyra.model import (
    Capability,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorEnvelope,
    FailureClass,
    PalyraError,
    TranscriptionRequest,
    TranscriptionResponse,
)
from palyra.model.context import RequestContext
from palyra.providers.base import Credential, ModelProvider
from palyra.routing.breaker import CircuitBreakers
from palyra.routing.breaker_state import Admission, BreakerKey, KeyKind
from palyra.routing.clock import Clock
from palyra.routing.groups import GroupRouter
from palyra.routing.health import HealthTracker
from palyra.routing.leases import Lease, LeaseManager
from palyra.routing.profile_balance import ProfileBalancer
from palyra.routing.registry import ModelRegistry, RoutePlan, Target, required_capabilities
from palyra.routing.retry import RetryPolicy, decide_retry
from palyra.routing.stream import RoutedStream, with_model
from palyra.routing.task_class import TaskLookup, task_of
from palyra.routing.trail import Attempt, AttemptTrail, Skip

T = TypeVar("T")

# Failures that belong to the credential: another profile of the same provider may work.
ROTATE_CREDENTIAL = frozenset(
    {
        FailureClass.AUTH_INVALID,
        FailureClass.AUTH_EXPIRED,
        FailureClass.PERMISSION_DENIED,
        FailureClass.RATE_LIMITED,
        FailureClass.QUOTA_EXHAUSTED,
    }
)


class CredentialSource(Protocol):
    """Where the router gets secrets for a provider, and tells how they fared."""

    async def credentials_for(
        self, provider: ProviderConfig, *, context: RequestContext | None = None
    ) -> list[Credential]: ...

    async def report(
        self, provider_id: str, profile_id: str | None, envelope: ErrorEnvelope | None
    ) -> None: ...


class RoutedResponse(NamedTuple, Generic[T]):
    """An answer and the trail of attempts behind it (a tuple: immutable, built in one step)."""

    response: T
    trail: AttemptTrail


class RoutingError(PalyraError):
    """A routed request failed; the trail says everything that was tried."""

    def __init__(self, envelope: ErrorEnvelope, trail: AttemptTrail) -> None:
        super().__init__(envelope)
        self.trail = trail


@dataclass
class Run:
    """One request's deadline, trail and caller facts (shared with ``routing.stream``)."""

    trail: AttemptTrail
    deadline: float
    background: bool
    context: RequestContext | None
    # The chat request, whose client headers (``x-palyra-task`` among them) are read only when
    # it names a routing group.
    request: ChatRequest | None = None


@dataclass
class InFlight:
    """An attempt in flight: what it holds until ``Router.settle`` or ``Router.abandon``."""

    target: Target
    profile_id: str | None
    lease: Lease
    target_admission: Admission
    credential_admission: Admission | None
    started_at: float
    waited_s: float
    retry_index: int
    target_key: BreakerKey
    credential_key: BreakerKey | None


class _Prepared(NamedTuple):
    """A target's provider, provider config, breaker key, per-attempt timeout (seconds) and
    profile selection (None for "ordered": the credential source's order as it is)."""

    provider: ModelProvider
    config: ProviderConfig
    key: BreakerKey
    per_attempt_s: float
    balance: str | None


Attempter = Callable[[ModelProvider, Target, Credential | None], Awaitable[T]]


class Router:
    """Routes neutral requests to providers; see the module docstring for the policy."""

    def __init__(
        self,
        registry: ModelRegistry,
        providers: Mapping[str, ModelProvider],
        credentials: CredentialSource,
        config: ModelProviderRegistryConfig,
        clock: Clock,
        rng: random.Random,
        breakers: CircuitBreakers,
        leases: LeaseManager,
        health: HealthTracker,
        *,
        groups: GroupRouter | None = None,
        agent_tasks: TaskLookup | None = None,
        balancer: ProfileBalancer | None = None,
    ) -> None:
        self.registry = registry
        self._providers = providers
        self._credentials = credentials
        self._config = config
        self.clock = clock
        self._rng = rng
        self._policy = RetryPolicy.from_config(config)
        # Read once: the config is frozen, and its attributes are slower to read than ours.
        self._failover = config.failover
        self._deadline_s = config.request_deadline_ms / 1000
        self.breakers = breakers
        self.leases = leases
        self.health = health
        self.groups = groups or GroupRouter(registry, leases, health, clock, rng)
        self.balancer = balancer or ProfileBalancer()
        # The task class of an agent a client token is bound to (the daemon sets it).
        self.agent_tasks = agent_tasks
        # Bounded by the configured targets and the credentials' profiles.
        self._keys: dict[tuple[KeyKind, str, str], BreakerKey] = {}
        # Per (provider id, model id) and per provider id: bounded by the configuration.
        self._prepared: dict[tuple[str, str], _Prepared] = {}
        self._per_attempt: dict[str, float] = {}

    async def chat(
        self,
        request: ChatRequest,
        *,
        deadline_s: float | None = None,
        background: bool = False,
        context: RequestContext | None = None,
    ) -> RoutedResponse[ChatResponse]:
        """A whole chat answer. ``deadline_s`` (seconds from now) overrides request_deadline_ms."""

        def attempt(
            provider: ModelProvider, target: Target, cred: Credential | None
        ) -> Awaitable[ChatResponse]:
            # The provider's coroutine itself: no wrapping coroutine per attempt.
            upstream = target.upstream_model
            same = model == upstream  # usually: no with_model call
            return provider.chat(
                request if same else with_model(request, upstream), credential=cred
            )

        model = request.model  # read once: a pydantic model's attributes are slow to read
        run = self._start(model, deadline_s, background, context, request)
        response, call = await self.route(run, model, required_capabilities(request), attempt)
        await self.settle(run, call, None)
        run.trail.finished_at = self.clock.now()
        target = call.target
        if response.model != target.model_id or not response.provider:
            response = response.model_copy(
                update={
                    "model": target.model_id,
                    "provider": response.provider or target.provider_id,
                }
            )
        return RoutedResponse(response, run.trail)

    def stream_chat(
        self,
        request: ChatRequest,
        *,
        deadline_s: float | None = None,
        background: bool = False,
        context: RequestContext | None = None,
    ) -> RoutedStream:
        """A stream of events; iterate it with ``async for``; ``.trail`` is filled as it goes."""
        return RoutedStream(
            self,
            request,
            self._start(request.model, deadline_s, background, context, request),
        )

    async def embed(
        self,
        request: EmbeddingRequest,
        *,
        deadline_s: float | None = None,
        background: bool = False,
        context: RequestContext | None = None,
    ) -> RoutedResponse[EmbeddingResponse]:
        def attempt(
            provider: ModelProvider, target: Target, cred: Credential | None
        ) -> Awaitable[EmbeddingResponse]:
            return provider.embed(with_model(request, target.upstream_model), credential=cred)

        run = self._start(request.model, deadline_s, background, context)
        response, call = await self.route(run, request.model, frozenset({"embeddings"}), attempt)
        await self.settle(run, call, None)
        run.trail.finished_at = self.clock.now()
        return RoutedResponse(with_model(response, call.target.model_id), run.trail)

    async def transcribe(
        self,
        request: TranscriptionRequest,
        *,
        deadline_s: float | None = None,
        background: bool = False,
        context: RequestContext | None = None,
    ) -> RoutedResponse[TranscriptionResponse]:
        def attempt(
            provider: ModelProvider, target: Target, cred: Credential | None
        ) -> Awaitable[TranscriptionResponse]:
            upstream = with_model(request, target.upstream_model)
            return provider.transcribe(upstream, credential=cred)

        run = self._start(request.model, deadline_s, background, context)
        response, call = await self.route(run, request.model, frozenset({"transcription"}), attempt)
        await self.settle(run, call, None)
        run.trail.finished_at = self.clock.now()
        return RoutedResponse(response, run.trail)

    def _start(
        self,
        model: str,
        deadline_s: float | None,
        background: bool,
        context: RequestContext | None,
        request: ChatRequest | None = None,
    ) -> Run:
        now = self.clock.now()
        budget = deadline_s if deadline_s is not None else self._deadline_s
        return Run(AttemptTrail(model, now, [], []), now + budget, background, context, request)

    def time_left(self, run: Run) -> float:
        return run.deadline - self.clock.now()

    def attempt_budget(self, run: Run, provider_id: str) -> float:
        """An attempt's time: the provider's (or global) request timeout, within the deadline."""
        per_attempt = self._per_attempt.get(provider_id)
        if per_attempt is None:
            per_attempt = self._per_attempt_s(provider_id)
        return max(0.0, min(per_attempt, run.deadline - self.clock.now()))

    def _per_attempt_s(self, provider_id: str) -> float:
        """The provider's (or global) request timeout in seconds, remembered per provider (a
        stream asks for every event; the config is frozen)."""
        timeout_ms = self.registry.provider(provider_id).timeout_ms
        found = self._per_attempt[provider_id] = (
            timeout_ms or self._config.request_timeout_ms
        ) / 1000
        return found

    def _prepare(self, run: Run, target: Target) -> _Prepared:
        """What every attempt at ``target`` needs, looked up once (the config is frozen)."""
        provider = self._providers.get(target.provider_id)
        if provider is None:
            raise RoutingError(
                ErrorEnvelope.of(
                    FailureClass.CONFIG,
                    f'model "{target.model_id}" names provider "{target.provider_id}", which '
                    "was not started; check [[model_provider.providers]] in palyra.toml",
                    provider=target.provider_id,
                ),
                run.trail,
            )
        pcfg = self.registry.provider(target.provider_id)
        prepared = _Prepared(
            provider,
            pcfg,
            self._key("target", target.provider_id, target.model_id),
            self._per_attempt_s(target.provider_id),
            None if pcfg.profile_selection == "ordered" else pcfg.profile_selection,
        )
        self._prepared[target.provider_id, target.model_id] = prepared
        return prepared

    def _key(self, kind: KeyKind, provider_id: str, name: str) -> BreakerKey:
        """The breaker key, built once per (kind, provider, name) (each build formats its text)."""
        found = self._keys.get((kind, provider_id, name))
        if found is None:
            found = self._keys[kind, provider_id, name] = BreakerKey(kind, provider_id, name)
        return found

    async def route(
        self, run: Run, name: str, caps: frozenset[Capability], attempt: Attempter[T]
    ) -> tuple[T, InFlight]:
        """Try candidates in order until one answers; raise the last error otherwise."""
        try:
            plan = self.registry.plan(name, caps)
            if plan.group is not None:
                plan = await self._group_plan(run, name, plan, caps)
        except PalyraError as exc:
            raise RoutingError(exc.envelope, run.trail) from exc
        if plan.skipped:
            run.trail.skipped += [Skip(model_id, reason) for model_id, reason in plan.skipped]
        targets = plan.targets if self._failover else plan.targets[:1]
        last: ErrorEnvelope | None = None
        min_window: int | None = None
        for index, target in enumerate(targets):
            if run.deadline - self.clock.now() <= 0:  # time_left, without the call
                break
            if min_window is not None and (target.context_window or 0) <= min_window:
                run.trail.skipped.append(
                    Skip(target.model_id, f"context window not larger than {min_window}")
                )
                continue
            has_next = index + 1 < len(targets) and (
                min_window is None
                or any((later.context_window or 0) > min_window for later in targets[index + 1 :])
            )
            outcome = await self._try_target(run, target, attempt, has_next=has_next)
            # Checked against tuple: isinstance against a pydantic class goes through ABCMeta.
            if isinstance(outcome, tuple):
                return outcome
            last = self._prefer(last, outcome)
            if not outcome.failover_allowed:
                raise RoutingError(outcome, run.trail)
            if outcome.failure_class is FailureClass.CONTEXT_TOO_LONG:
                min_window = max(min_window or 0, target.context_window or 0)
        run.trail.finished_at = self.clock.now()
        raise RoutingError(last or self._deadline_error(run, name), run.trail)

    async def _group_plan(
        self, run: Run, name: str, plan: RoutePlan, caps: frozenset[Capability]
    ) -> RoutePlan:
        """The group's members in the order its strategy picks now (noted in the trail for
        ``x-palyra-route``), then their fallbacks."""
        request = run.request
        task, source = task_of(
            request.headers if request is not None else None,
            run.context,
            background=run.background,
            agent_tasks=self.agent_tasks,
        )
        plan, run.trail.route = await self.groups.plan(name, plan, caps, task, source)
        return plan

    @staticmethod
    def _prefer(last: ErrorEnvelope | None, new: ErrorEnvelope) -> ErrorEnvelope:
        """The error to report: a real upstream failure beats "circuit open" skips."""
        if last is not None and new.failure_class is FailureClass.CIRCUIT_OPEN:
            if last.failure_class is not FailureClass.CIRCUIT_OPEN:
                return last
            soonest = min(last.retry_after_s or 0.0, new.retry_after_s or 0.0)
            return last.model_copy(update={"retry_after_s": soonest})
        return new

    async def _try_target(
        self, run: Run, target: Target, attempt: Attempter[T], *, has_next: bool
    ) -> tuple[T, InFlight] | ErrorEnvelope:
        """All attempts at one target: credential rotation and retries with backoff."""
        prepared = self._prepared.get((target.provider_id, target.model_id))
        if prepared is None:
            prepared = self._prepare(run, target)
        provider, pcfg, target_key, per_attempt_s, balance = prepared
        try:
            # Only read, never changed: the source's list is used as it is.
            creds: Sequence[Credential | None] = await self._credentials.credentials_for(
                pcfg, context=run.context
            ) or (None,)
        except PalyraError as exc:
            run.trail.skipped.append(
                Skip(target.model_id, f"no credential: {exc.envelope.message}")
            )
            return exc.envelope
        if balance is not None:
            creds = self.balancer.order(pcfg.id, balance, creds, _profile_of, self.clock.now())
        breakers = self.breakers
        last: ErrorEnvelope | None = None
        for cred_index, cred in enumerate(creds):
            profile = cred.profile_id if cred is not None else None
            cred_key = (
                None if profile is None else self._key("credential", target.provider_id, profile)
            )
            retry_index = 0
            waited = 0.0
            while True:
                # ``allow_now`` answers without a coroutine for the in-memory store, else None;
                # ``now`` is read again after any await, and becomes the attempt's start.
                now = self.clock.now()
                t_adm = breakers.allow_now(target_key, now)
                if t_adm is None:
                    t_adm = await breakers.allow(target_key)
                    now = self.clock.now()
                if not t_adm.allowed:
                    run.trail.skipped.append(
                        Skip(
                            target.model_id,
                            f"circuit open for {t_adm.retry_in_s:.1f}s more",
                            label=_circuit_label(target),
                            position=len(run.trail.attempts),
                        )
                    )
                    return last or self._circuit_error(target, None, t_adm)
                c_adm: Admission | None = None
                if cred_key is not None:
                    c_adm = breakers.allow_now(cred_key, now)
                    if c_adm is None:
                        c_adm = await breakers.allow(cred_key)
                        now = self.clock.now()
                    if not c_adm.allowed:
                        await breakers.abandon(target_key, t_adm)
                        run.trail.skipped.append(
                            Skip(
                                target.model_id,
                                f"credential cooling down for {c_adm.retry_in_s:.1f}s more",
                                profile,
                                label=_circuit_label(target),
                                position=len(run.trail.attempts),
                            )
                        )
                        last = last or self._circuit_error(target, profile, c_adm)
                        break
                started = now
                lease = self.leases.try_acquire(pcfg, profile, background=run.background)
                leased_at = started  # granted at once: no wait to time
                if lease is None:
                    try:
                        lease = await self.leases.acquire(
                            pcfg,
                            profile,
                            background=run.background,
                            timeout_s=run.deadline - started,
                        )
                    except PalyraError as exc:
                        await self._release_admissions(target_key, t_adm, cred_key, c_adm)
                        run.trail.skipped.append(
                            Skip(target.model_id, exc.envelope.message, profile)
                        )
                        return exc.envelope
                    leased_at = self.clock.now()
                call = InFlight(
                    target,
                    profile,
                    lease,
                    t_adm,
                    c_adm,
                    leased_at,
                    waited + (leased_at - started),
                    retry_index,
                    target_key,
                    cred_key,
                )
                envelope: ErrorEnvelope | None = None
                try:
                    budget = max(0.0, min(per_attempt_s, run.deadline - leased_at))
                    async with self.clock.timeout(budget):
                        result = await attempt(provider, target, cred)
                except TimeoutError:
                    envelope = self.timeout_error(run, call)
                except PalyraError as exc:
                    envelope = exc.envelope
                except BaseException:
                    await self.abandon(run, call)
                    raise
                if envelope is None:
                    if balance is not None and balance == "rate_limit" and profile is not None:
                        self.balancer.observe(
                            pcfg.id, profile, _answer_headers(result), self.clock.now()
                        )
                    return result, call
                await self.settle(run, call, envelope)
                last = envelope
                if (
                    balance is not None
                    and balance == "rate_limit"
                    and profile is not None
                    and envelope.failure_class is FailureClass.RATE_LIMITED
                ):
                    self.balancer.exhausted(
                        pcfg.id, profile, envelope.retry_after_s, self.clock.now()
                    )
                if envelope.failure_class in ROTATE_CREDENTIAL and cred_index < len(creds) - 1:
                    break
                if has_next and envelope.failover_allowed:
                    return envelope
                decision = decide_retry(
                    self._policy, envelope, retry_index, self._rng, time_left_s=self.time_left(run)
                )
                if not decision.retry:
                    return envelope
                await self.clock.sleep(decision.delay_s)
                waited = decision.delay_s
                retry_index += 1
        assert last is not None  # every credential ended in an error or a skip
        return last

    async def _release_admissions(
        self,
        target_key: BreakerKey,
        t_adm: Admission,
        cred_key: BreakerKey | None,
        c_adm: Admission | None,
    ) -> None:
        await self.breakers.abandon(target_key, t_adm)
        if cred_key is not None and c_adm is not None:
            await self.breakers.abandon(cred_key, c_adm)

    async def settle(self, run: Run, call: InFlight, envelope: ErrorEnvelope | None) -> None:
        """Close an attempt: release its lease, log it, feed breakers, health and the auth layer."""
        call.lease.release()
        now = self.clock.now()
        target = call.target
        # Positional: naming the ten fields doubles what building the NamedTuple costs.
        run.trail.attempts.append(
            Attempt(
                target.model_id,
                target.provider_id,
                target.upstream_model,
                call.profile_id,
                "ok" if envelope is None else envelope.failure_class.value,
                None if envelope is None else envelope.failure_class,
                call.retry_index,
                call.started_at,
                now - call.started_at,
                call.waited_s,
            )
        )
        # ``record_now`` answers without a coroutine for the in-memory store, else None.
        breakers = self.breakers
        target_key = call.target_key
        credentialed = call.profile_id is not None
        state = breakers.record_now(
            target_key, call.target_admission, envelope, now, credentialed=credentialed
        )
        if state is None:
            state = await breakers.record(
                target_key, call.target_admission, envelope, credentialed=credentialed
            )
        self.health.note_breaker(target_key.text, state.phase)
        cred_key = call.credential_key
        if cred_key is not None and call.credential_admission is not None:
            state = breakers.record_now(cred_key, call.credential_admission, envelope, now)
            if state is None:
                state = await breakers.record(cred_key, call.credential_admission, envelope)
            self.health.note_breaker(cred_key.text, state.phase)
        self.health.observe(
            target.provider_id,
            target.model_id,
            call.profile_id,
            at=now,
            elapsed_s=now - call.started_at,
            envelope=envelope,
        )
        await self._credentials.report(target.provider_id, call.profile_id, envelope)

    async def abandon(self, run: Run, call: InFlight) -> None:
        """The caller went away mid-call: free the lease and any probe, judge nothing."""
        call.lease.release()
        await self._release_admissions(
            call.target_key, call.target_admission, call.credential_key, call.credential_admission
        )

    def timeout_error(self, run: Run, call: InFlight) -> ErrorEnvelope:
        target = call.target
        waited = self.clock.now() - call.started_at
        return ErrorEnvelope.of(
            FailureClass.TIMEOUT,
            f'model "{target.model_id}" on provider "{target.provider_id}" did not answer within '
            f"{waited:.1f}s (its share of the request deadline); raise request_timeout_ms or "
            "request_deadline_ms in [model_provider] of palyra.toml if it is just slow",
            provider=target.provider_id,
            model=target.model_id,
        )

    def _deadline_error(self, run: Run, name: str) -> ErrorEnvelope:
        spent = self.clock.now() - run.trail.started_at
        return ErrorEnvelope.of(
            FailureClass.TIMEOUT,
            f'request to model "{name}" ran out of its deadline after {spent:.1f}s and '
            f"{len(run.trail.attempts)} attempts; raise request_deadline_ms in [model_provider] "
            "of palyra.toml or pass a longer deadline",
            model=name,
        )

    @staticmethod
    def _circuit_error(target: Target, profile: str | None, admission: Admission) -> ErrorEnvelope:
        what = (
            f'credential "{profile}" of provider "{target.provider_id}"'
            if profile
            else f'model "{target.model_id}" on provider "{target.provider_id}"'
        )
        return ErrorEnvelope.of(
            FailureClass.CIRCUIT_OPEN,
            f"{what} is cooling down after repeated failures; retry in "
            f"{admission.retry_in_s:.0f}s or check `palyra doctor` for its health",
            retry_after_s=admission.retry_in_s,
            provider=target.provider_id,
            model=target.model_id,
        )


def _profile_of(credential: Credential | None) -> str | None:
    return None if credential is None else credential.profile_id


def _answer_headers(result: object) -> Mapping[str, str]:
    """The upstream answer's headers a result carries (a stream: its first event's)."""
    if isinstance(result, tuple):
        result = result[0]
    headers = getattr(result, "headers", None)
    return headers if isinstance(headers, Mapping) else {}


def _circuit_label(target: Target) -> str:
    """How a candidate skipped for an open breaker shows in ``x-palyra-attempts``."""
    return f"{target.provider_id}/{target.upstream_model}:circuit_open"
