"""The one table from a provider ``kind`` to the code that builds it; a new provider is one entry.

A provider's static ``api_key`` is never handed to the provider here: credentials come per call
from routing's ``CredentialSource``, so rotating a key or a profile needs no rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import httpx2

from palyra.config.provider_rules import (
    missing_base_url,
    quirks_problem,
    responses_api_problem,
)
from palyra.config.schema import ModelConfig, ProviderConfig
from palyra.model import FailureClass, PalyraError, ReasoningEffort
from palyra.model.reasoning import effort_budgets
from palyra.providers.anthropic import DEFAULT_ANTHROPIC_BASE_URL, AnthropicProvider
from palyra.providers.anthropic.output_config import OutputOptions
from palyra.providers.base import ModelProvider
from palyra.providers.deterministic import DeterministicProvider
from palyra.providers.openai import DEFAULT_OPENAI_BASE_URL, OpenAIProvider
from palyra.providers.openai_compatible import OpenAICompatibleProvider, quirks_from_names
from palyra.providers.upstream.guard import check_base_url, make_upstream_client
from palyra.providers.upstream.limits import DEFAULT_UPSTREAM_LIMITS, UpstreamLimits

ProviderFactory = Callable[[ProviderConfig, httpx2.AsyncClient | None], ModelProvider]

DEFAULT_BASE_URLS: dict[str, str] = {
    "anthropic": DEFAULT_ANTHROPIC_BASE_URL,
    "openai": DEFAULT_OPENAI_BASE_URL,
}
LOCAL_KINDS = frozenset({"deterministic"})


def _where(cfg: ProviderConfig) -> str:
    return f'provider "{cfg.id}" (kind {cfg.kind})'


def _refuse(message: str | None, cfg: ProviderConfig) -> None:
    if message is not None:
        raise PalyraError.of(FailureClass.CONFIG, message, provider=cfg.id)


def base_url_of(cfg: ProviderConfig) -> str:
    """The URL a provider talks to: its ``base_url``, else the kind's public API."""
    _refuse(missing_base_url(cfg), cfg)
    url = cfg.base_url or DEFAULT_BASE_URLS.get(cfg.kind)
    if url is None:
        raise PalyraError.of(
            FailureClass.CONFIG,
            f"{_where(cfg)} talks to no upstream, so it has no base URL",
            provider=cfg.id,
        )
    return url


def _no_quirks(cfg: ProviderConfig) -> None:
    _refuse(quirks_problem(cfg), cfg)


def _client(cfg: ProviderConfig, client: httpx2.AsyncClient | None) -> httpx2.AsyncClient:
    if client is None:
        raise PalyraError.of(
            FailureClass.INTERNAL,
            f"{_where(cfg)} needs an upstream HTTP client; build providers with "
            "palyra.routing.assembly.build_runtime (or pass upstream_client_for(cfg, ...))",
            provider=cfg.id,
        )
    return client


def _deterministic(cfg: ProviderConfig, client: httpx2.AsyncClient | None) -> ModelProvider:
    _no_quirks(cfg)
    return DeterministicProvider(id=cfg.id)


def _anthropic(cfg: ProviderConfig, client: httpx2.AsyncClient | None) -> ModelProvider:
    _no_quirks(cfg)
    return AnthropicProvider(
        id=cfg.id,
        base_url=base_url_of(cfg),
        client=_client(cfg, client),
        anthropic_version=cfg.anthropic_version,
        headers=dict(cfg.headers),
    )


def _openai(cfg: ProviderConfig, client: httpx2.AsyncClient | None) -> ModelProvider:
    _no_quirks(cfg)
    return OpenAIProvider(
        id=cfg.id,
        base_url=base_url_of(cfg),
        client=_client(cfg, client),
        headers=openai_headers(cfg),
    )


def openai_headers(cfg: ProviderConfig) -> dict[str, str]:
    """The provider's fixed headers: ``headers`` plus its organization and project."""
    headers = dict(cfg.headers)
    if cfg.organization:
        headers["openai-organization"] = cfg.organization
    if cfg.project:
        headers["openai-project"] = cfg.project
    return headers


def _openai_compatible(cfg: ProviderConfig, client: httpx2.AsyncClient | None) -> ModelProvider:
    _refuse(quirks_problem(cfg), cfg)  # the rule palyra config check applies
    quirks = quirks_from_names(cfg.quirks)
    return OpenAICompatibleProvider(
        id=cfg.id,
        base_url=base_url_of(cfg),
        client=_client(cfg, client),
        headers=openai_headers(cfg),
        quirks=quirks,
    )


PROVIDER_FACTORIES: dict[str, ProviderFactory] = {
    "deterministic": _deterministic,
    "anthropic": _anthropic,
    "openai": _openai,
    "openai_compatible": _openai_compatible,
}


def needs_client(cfg: ProviderConfig) -> bool:
    """Whether this provider talks HTTP (and so gets its own pooled client)."""
    return cfg.kind not in LOCAL_KINDS


def upstream_client_for(
    cfg: ProviderConfig, *, timeout_s: float, limits: UpstreamLimits = DEFAULT_UPSTREAM_LIMITS
) -> httpx2.AsyncClient:
    """A pooled, address-guarded client for one provider, after its base URL passed the check.

    The caller owns the client and closes it; providers never close injected clients.
    """
    check_base_url(base_url_of(cfg), allow_private=cfg.allow_private_base_url, provider_id=cfg.id)
    return make_upstream_client(
        allow_private=cfg.allow_private_base_url,
        timeout_s=timeout_s,
        provider_id=cfg.id,
        limits=limits,
    )


ModelBudgets = Mapping[str, Mapping[ReasoningEffort, int]]
"""Thinking budget tables per upstream model name (only models that set their own)."""


def model_budgets(cfg: ProviderConfig, models: Sequence[ModelConfig]) -> ModelBudgets:
    """The reasoning budget tables of the models served by ``cfg``, by upstream model name;
    two models naming one upstream model with different tables are a ``config`` error."""
    tables: dict[str, dict[ReasoningEffort, int]] = {}
    owners: dict[str, str] = {}
    for model in models:
        if model.provider != cfg.id or not model.reasoning_budgets:
            continue
        name, table = model.upstream_model, effort_budgets(model.reasoning_budgets)
        if name in tables and tables[name] != table:
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'models "{owners[name]}" and "{model.id}" both send upstream model "{name}" to '
                f'provider "{cfg.id}" with different reasoning_budgets; give them the same table',
                provider=cfg.id,
            )
        tables[name], owners[name] = table, model.id
    return tables


def model_output_options(
    cfg: ProviderConfig, models: Sequence[ModelConfig]
) -> dict[str, OutputOptions]:
    """What each model of ``cfg`` takes of Anthropic's ``output_config``, by upstream model name
    (only models that set an option); a ``config`` error when a model of another kind sets one
    or two models disagree about one upstream model."""
    options: dict[str, OutputOptions] = {}
    for model in models:
        if model.provider != cfg.id or not (model.output_effort or model.structured_outputs):
            continue
        if cfg.kind != "anthropic":
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'model "{model.id}" sets output_effort or structured_outputs, which only '
                f'Anthropic models take, but provider "{cfg.id}" has kind "{cfg.kind}"; remove them',
                provider=cfg.id,
            )
        wanted = OutputOptions(effort=model.output_effort, structured=model.structured_outputs)
        name = model.upstream_model
        if options.get(name, wanted) != wanted:
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'two models send upstream model "{name}" to provider "{cfg.id}" with different '
                "output_effort / structured_outputs; give them the same",
                provider=cfg.id,
            )
        options[name] = wanted
    return options


def build_provider(
    cfg: ProviderConfig,
    client: httpx2.AsyncClient | None,
    responses_models: frozenset[str] = frozenset(),
    models: Sequence[ModelConfig] = (),
) -> ModelProvider:
    """The provider for one ``[[model_provider.providers]]`` entry, or a ``config`` error.

    ``client`` is required for every kind but ``deterministic``; see :func:`upstream_client_for`.
    ``responses_models`` are the upstream model names configured with ``api = "responses"``;
    ``models`` the configured models (those of this provider give it their ``reasoning_budgets``).
    """
    budgets = model_budgets(cfg, models)
    output_options = model_output_options(cfg, models)
    _refuse(responses_api_problem(cfg, responses_models), cfg)  # as palyra config check does
    factory = PROVIDER_FACTORIES.get(cfg.kind)
    if factory is None:
        known = ", ".join(sorted(PROVIDER_FACTORIES))
        raise PalyraError.of(
            FailureClass.CONFIG,
            f'provider "{cfg.id}" has kind "{cfg.kind}", which this build cannot run '
            f"(available kinds: {known}); change its kind or remove it from "
            "[[model_provider.providers]] in palyra.toml",
            provider=cfg.id,
        )
    provider = factory(cfg, client)
    if responses_models and isinstance(provider, OpenAIProvider):
        provider.responses_models = responses_models
    if isinstance(provider, OpenAIProvider | AnthropicProvider):
        if budgets:
            provider.effort_budgets = dict(budgets)
        provider.forward_headers = frozenset(cfg.forward_headers)
    if output_options and isinstance(provider, AnthropicProvider):
        provider.output_options = output_options
    return provider
