"""The ``palyra.toml`` schema. Secrets appear only as references (``env:``, ``vault:``, ``file:``)."""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palyra.model import Capability, ReasoningEffort
from palyra.model.context import TaskClass, task_class_problem
from palyra.model.forwarding import refused_forward_header

MIN_THINKING_BUDGET = 1024

ProviderKind = Literal["openai", "anthropic", "openai_compatible", "deterministic"]
CostTier = Literal["low", "standard", "premium"]
LatencyTier = Literal["low", "standard", "high"]
ProfileSelection = Literal["ordered", "round_robin", "rate_limit"]
Strategy = Literal["ordered", "weighted", "least_busy", "lowest_latency", "cheapest", "task"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonConfig(_Section):
    bind: str = "127.0.0.1:7142"
    client_tokens: list[str] = Field(default_factory=list)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # A request's head: target plus header names and values, how many headers, how long it
    # may take to arrive (see palyra.daemon.server.http_protocol.HeadLimits).
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=8)
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    cors_origins: list[str] = Field(default_factory=list)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    # Worker processes serving the one listening socket (see palyra.daemon.server.workers).
    workers: int = Field(default=1, ge=1, le=256)


class StorageConfig(_Section):
    url: str = "sqlite+aiosqlite:///{state_dir}/palyra.db"
    redis_url: str = ""


class ResponsesConfig(_Section):
    """``[responses]``: how long ``POST /v1/responses`` answers stored with ``store`` (the
    default) stay retrievable and chainable; 0 keeps them until deleted."""

    retention_days: float = Field(default=30.0, ge=0)


class CronConfig(_Section):
    """``[cron]``: scheduled agent runs. Webhooks go through the upstream guard: private
    addresses only with ``webhook_allow_private``; a failed POST is retried after each delay."""

    webhook_allow_private: bool = False
    webhook_backoff_s: list[float] = Field(default_factory=lambda: [1.0, 5.0, 30.0], max_length=10)
    # A running run is held under a lease its owner renews every heartbeat_s; a replica that
    # dies mid-run loses it lease_s after its last beat, and another closes or retries the run.
    heartbeat_s: float = Field(default=2.0, gt=0, le=300)
    lease_s: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _lease_outlasts_beats(self) -> CronConfig:
        if self.lease_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"lease_s ({self.lease_s:g}) must be at least twice heartbeat_s "
                f"({self.heartbeat_s:g}), or a slow beat loses a live run's lease; raise lease_s"
            )
        return self


class BreakerConfig(_Section):
    """Per (provider, model) and per credential circuit breaker settings."""

    consecutive_failures: int = Field(default=5, ge=1)
    error_ratio: float = Field(default=0.5, gt=0, le=1)
    window_s: float = Field(default=60.0, gt=0)
    min_requests: int = Field(default=20, ge=1)
    cooldown_ladder_s: list[float] = Field(default_factory=lambda: [30.0, 60.0, 300.0, 1500.0])
    auth_disable_s: float = Field(default=3600.0, gt=0)


class ProviderConfig(_Section):
    id: str = Field(pattern=ID_PATTERN)
    kind: ProviderKind
    base_url: str | None = None
    api_key: str | None = None  # a secret reference, never a value
    auth_profile_id: str | None = None
    auth_profile_ids: list[str] = Field(default_factory=list)  # tried in order on 401/429
    allow_private_base_url: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    max_concurrency_per_credential: int | None = Field(default=None, ge=1)
    quirks: list[str] = Field(default_factory=list)  # openai_compatible switches
    anthropic_version: str = "2023-06-01"
    # OpenAI's OpenAI-Organization / OpenAI-Project headers (kind openai); when unset, a
    # client's own are passed on.
    organization: str | None = None
    project: str | None = None
    # Client headers passed on to this provider beyond the vendor's own (anthropic-beta, ...);
    # credentials and hop-by-hop headers are refused.
    forward_headers: list[str] = Field(default_factory=list)
    # How requests spread over several auth profiles: in order (the next only on failure),
    # round_robin, or rate_limit (the profile with the most remaining rate limit first, from
    # the upstream's x-ratelimit-remaining-* / anthropic-ratelimit-* answer headers).
    profile_selection: ProfileSelection = "ordered"

    @field_validator("forward_headers")
    @classmethod
    def _forwardable(cls, names: list[str]) -> list[str]:
        for name in names:
            why = refused_forward_header(name)
            if why is not None:
                raise ValueError(f"forward_headers: {why}; remove it")
        return [name.strip().lower() for name in names]

    def profile_ids(self) -> list[str]:
        """All auth profiles in rotation order (``auth_profile_id`` first)."""
        ids = [self.auth_profile_id] if self.auth_profile_id else []
        return ids + [p for p in self.auth_profile_ids if p not in ids]


class ModelConfig(_Section):
    id: str = Field(pattern=ID_PATTERN)  # the name clients send as "model"
    provider: str
    model: str | None = None  # the upstream model name; defaults to id
    capabilities: list[Capability] = Field(default_factory=lambda: list[Capability](["chat"]))
    context_window: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    # Embeddings: the largest `dimensions` a client may ask for (default: the known size of
    # OpenAI's models, else palyra.model.embeddings.DEFAULT_MAX_DIMENSIONS).
    max_dimensions: int | None = Field(default=None, ge=1)
    fallbacks: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    # Which OpenAI API serves the model: Chat Completions, or /v1/responses (kind openai only).
    api: Literal["chat", "responses"] = "chat"
    # Thinking budget per reasoning effort (``reasoning_budgets = {low = 2048, high = 24000}``),
    # over palyra.model.reasoning.DEFAULT_EFFORT_BUDGETS: what an OpenAI ``reasoning_effort``
    # becomes on an Anthropic model, and how an Anthropic budget is read as a level on OpenAI.
    reasoning_budgets: dict[ReasoningEffort, int] = Field(default_factory=dict)
    # Anthropic models only: what the model takes of Anthropic's output_config, for clients of
    # other APIs. output_effort: a reasoning effort level goes as output_config.effort instead
    # of becoming a thinking budget; structured_outputs: a JSON-schema response format goes as
    # output_config.format instead of a system instruction.
    output_effort: bool = False
    structured_outputs: bool = False
    # What routing groups order by (``task`` and the explanation): unset reads as "standard".
    cost_tier: CostTier | None = None
    latency_tier: LatencyTier | None = None

    @field_validator("reasoning_budgets")
    @classmethod
    def _budgets_fit_anthropic(
        cls, budgets: dict[ReasoningEffort, int]
    ) -> dict[ReasoningEffort, int]:
        for level, tokens in budgets.items():
            if tokens < MIN_THINKING_BUDGET:
                raise ValueError(
                    f"reasoning_budgets.{level} is {tokens}; Anthropic needs a thinking budget "
                    f"of at least {MIN_THINKING_BUDGET} tokens"
                )
        if "none" in budgets:
            raise ValueError("reasoning_budgets.none: 'none' turns reasoning off and has no budget")
        return budgets

    @property
    def upstream_model(self) -> str:
        return self.model or self.id


class PriceConfig(_Section):
    """One ``[[pricing.models]]`` entry: USD per million tokens from ``effective_from`` on.

    Entries for a (kind, model) replace the shipped prices of that pair; ``provider`` (a
    provider id) narrows the entry to one provider, e.g. an ``openai_compatible`` server.
    An absent ``cached_input`` or ``cache_write_*`` rate is the input rate, an absent
    ``cache_write_1h`` the 5-minute one, an absent ``reasoning`` the output rate."""

    kind: ProviderKind
    model: str = Field(min_length=1, max_length=256)
    provider: str | None = None
    effective_from: date
    input: float = Field(ge=0, le=100_000)
    output: float = Field(ge=0, le=100_000)
    cached_input: float | None = Field(default=None, ge=0, le=100_000)
    cache_write_5m: float | None = Field(default=None, ge=0, le=100_000)
    cache_write_1h: float | None = Field(default=None, ge=0, le=100_000)
    reasoning: float | None = Field(default=None, ge=0, le=100_000)


class PricingConfig(_Section):
    """``[pricing]``: prices over the ones shipped in ``palyra/pricing/defaults.toml``;
    ``shipped = false`` keeps only the configured ones (every other model's cost is unknown)."""

    shipped: bool = True
    models: list[PriceConfig] = Field(default_factory=list)


class RoutingGroupConfig(_Section):
    """``[[model_provider.routing_groups]]``: a name clients send as ``model`` that routes to
    one of its members by ``strategy`` (see palyra.routing.strategies); the other members, then
    their fallbacks, are the failover order."""

    id: str = Field(pattern=ID_PATTERN)
    strategy: Strategy = "ordered"
    members: list[str] = Field(min_length=1, max_length=32)
    # weighted: relative share per member (a member left out weighs 1).
    weights: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # lowest_latency: a member not called for this long is tried next, to measure it again.
    explore_after_s: float = Field(default=300.0, gt=0)
    # task: the task class of a request that names none (cron runs are "background").
    default_task: str = "interactive"

    @field_validator("members")
    @classmethod
    def _distinct(cls, members: list[str]) -> list[str]:
        seen: set[str] = set()
        for member in members:
            if member in seen:
                raise ValueError(f'member "{member}" is listed twice; list each member once')
            seen.add(member)
        return members

    @field_validator("weights")
    @classmethod
    def _finite(cls, weights: dict[str, float]) -> dict[str, float]:
        for name, value in weights.items():
            if not math.isfinite(value):
                raise ValueError(f"weights.{name} must be a finite number above 0")
        return weights

    @field_validator("default_task")
    @classmethod
    def _task(cls, name: str) -> str:
        problem = task_class_problem(name)
        if problem is not None:
            raise ValueError(problem)
        return name

    @property
    def task(self) -> TaskClass:
        return cast("TaskClass", self.default_task)  # checked by _task


class LimitSpec(_Section):
    """Limits on one client token, agent or provider; each absent one is no limit.

    ``models``: the model ids (or aliases) it may call; ``rpm``/``tpm``: requests and tokens
    per minute (sliding window); ``concurrency``: requests in flight; budgets per UTC day and
    calendar month in tokens or USD, refused once reached; ``soft_ratio``: the share of a
    budget past which answers carry a warning header and a warning is logged."""

    models: list[str] | None = Field(default=None, max_length=1000)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    budget_tokens_day: int | None = Field(default=None, ge=1)
    budget_tokens_month: int | None = Field(default=None, ge=1)
    budget_usd_day: float | None = Field(default=None, gt=0)
    budget_usd_month: float | None = Field(default=None, gt=0)
    soft_ratio: float = Field(default=0.8, gt=0, le=1)

    def is_empty(self) -> bool:
        """Whether nothing is limited (such a token skips every limit check)."""
        return all(getattr(self, name) is None for name in LIMIT_NAMES)


LIMIT_NAMES = (
    "models",
    "rpm",
    "tpm",
    "concurrency",
    "budget_tokens_day",
    "budget_tokens_month",
    "budget_usd_day",
    "budget_usd_month",
)


class LimitsConfig(_Section):
    """``[limits]``: limits per agent id and per provider id (client tokens carry their own,
    set with ``palyra token create/update``)."""

    agents: dict[str, LimitSpec] = Field(default_factory=dict)
    providers: dict[str, LimitSpec] = Field(default_factory=dict)


class UsageConfig(_Section):
    """``[usage]``: the usage ledger. Rows are written in batches every ``flush_interval_s``
    (so a crash loses at most that much); a full queue drops rows and counts them."""

    ledger: bool = True
    retention_days: float = Field(default=90.0, ge=0)
    flush_interval_s: float = Field(default=0.5, gt=0, le=1.0)
    queue_size: int = Field(default=10_000, ge=100, le=1_000_000)


class ModelProviderRegistryConfig(_Section):
    """The ``[model_provider]`` section: providers, models, defaults, retries and breakers."""

    default_chat_model: str = "default"
    default_embeddings_model: str = "embed"
    default_transcription_model: str = "whisper"
    request_timeout_ms: int = Field(default=60_000, ge=1)
    request_deadline_ms: int = Field(default=120_000, ge=1)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_ms: int = Field(default=150, ge=0)
    retry_backoff_max_ms: int = Field(default=5_000, ge=0)
    retry_after_cap_ms: int = Field(default=30_000, ge=0)
    failover: bool = True
    auto_fallback: bool = False
    # What one upstream answer may hold: a whole body (JSON or error), and one SSE event.
    max_upstream_body_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    max_upstream_event_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    routing_groups: list[RoutingGroupConfig] = Field(default_factory=list)


class PalyraConfig(_Section):
    version: Literal[1] = 1
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    cron: CronConfig = Field(default_factory=CronConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    usage: UsageConfig = Field(default_factory=UsageConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    model_provider: ModelProviderRegistryConfig = Field(default_factory=ModelProviderRegistryConfig)


def default_config() -> PalyraConfig:
    """Built-in defaults: a deterministic provider, so the daemon answers with no file and no keys."""
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            providers=[ProviderConfig(id="deterministic", kind="deterministic")],
            models=[
                ModelConfig(
                    id="default",
                    provider="deterministic",
                    model="deterministic",
                    capabilities=["chat", "tools", "vision", "json"],
                    context_window=128_000,
                ),
                ModelConfig(
                    id="embed",
                    provider="deterministic",
                    model="deterministic-embed",
                    capabilities=["embeddings"],
                ),
                ModelConfig(
                    id="whisper",
                    provider="deterministic",
                    model="deterministic-whisper",
                    capabilities=["transcription"],
                ),
            ],
        )
    )
