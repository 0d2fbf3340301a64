"""The model registry: client model ids and aliases to ordered, capable upstream targets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from palyra.config.group_rules import group_problems
from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    ProviderConfig,
    RoutingGroupConfig,
)
from palyra.model import Capability, ChatRequest, FailureClass, PalyraError

Role = Literal["chat", "embeddings", "transcription"]


@dataclass(frozen=True, slots=True)
class Target:
    """One place a request can go: a configured model on its provider."""

    model_id: str
    provider_id: str
    upstream_model: str
    context_window: int | None
    capabilities: frozenset[Capability] = field(default=frozenset())


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Targets in the order to try them, and the models passed over with the reason.

    ``ModelRegistry.plan`` hands out the same plan for the same name and capabilities: read it,
    do not change its lists. A routing group's plan names the ``group``: its targets are every
    member in the group's own order, which the router reorders by the group's strategy.
    """

    targets: list[Target]
    skipped: list[tuple[str, str]]
    group: RoutingGroupConfig | None = None


def _caps(vision: bool, tools: bool, json: bool) -> frozenset[Capability]:
    caps: set[Capability] = {"chat"}
    if vision:
        caps.add("vision")
    if tools:
        caps.add("tools")
    if json:
        caps.add("json")
    return frozenset(caps)


_CHAT_CAPS = {
    (vision, tools, json): _caps(vision, tools, json)
    for vision in (False, True)
    for tools in (False, True)
    for json in (False, True)
}


def required_capabilities(request: ChatRequest) -> frozenset[Capability]:
    """What a chat request needs from a model: images need vision, tools need tools, and so on."""
    # ``part.type`` is the content union's discriminator: cheaper than ``isinstance`` against a
    # pydantic class (an ABC check), and exact.
    vision = False
    for message in request.messages:
        for part in message.content:
            if part.type == "image":
                vision = True
                break
        if vision:
            break
    fmt = request.response_format
    return _CHAT_CAPS[vision, bool(request.tools), fmt is not None and fmt.type != "text"]


class ModelRegistry:
    """Resolves names and orders candidates; pure data, built once from config.

    Plans are remembered per (name, capabilities): the config they come from is frozen, and only
    names that resolve get a plan, so the memo holds at most every configured id and alias times
    the capability sets requests can need.
    """

    def __init__(
        self,
        models: Iterable[ModelConfig],
        providers: Iterable[ProviderConfig],
        *,
        defaults: dict[Role, str],
        auto_fallback: bool,
        groups: Iterable[RoutingGroupConfig] = (),
    ) -> None:
        self._models = {m.id: m for m in models}
        self._providers = {p.id: p for p in providers}
        self._groups = {g.id: g for g in groups}
        self._defaults = defaults
        self._auto_fallback = auto_fallback
        self._names: dict[str, str] = {}
        self._plans: dict[tuple[str, frozenset[Capability]], RoutePlan] = {}
        for model in self._models.values():
            for name in [model.id, *model.aliases]:
                owner = self._names.setdefault(name, model.id)
                if owner != model.id:
                    raise PalyraError.of(
                        FailureClass.CONFIG,
                        f'model name "{name}" is used by both "{owner}" and "{model.id}"; '
                        "rename one id or alias in [[model_provider.models]] of palyra.toml",
                    )
        if self._groups:
            self._check_groups()

    def _check_groups(self) -> None:
        """The config check's rules (palyra.config.group_rules), for configs built in code."""
        limited = frozenset(p.id for p in self._providers.values() if p.max_concurrency)
        provider_of = {m.id: m.provider for m in self._models.values()}
        groups = list(self._groups.values())
        problems = group_problems(groups, self._names, provider_of, limited)
        if problems:
            raise PalyraError.of(
                FailureClass.CONFIG,
                "; ".join(message for _, _, message in problems)
                + " (in [[model_provider.routing_groups]] of palyra.toml)",
            )

    @classmethod
    def from_config(cls, cfg: ModelProviderRegistryConfig) -> ModelRegistry:
        return cls(
            cfg.models,
            cfg.providers,
            defaults={
                "chat": cfg.default_chat_model,
                "embeddings": cfg.default_embeddings_model,
                "transcription": cfg.default_transcription_model,
            },
            auto_fallback=cfg.auto_fallback,
            groups=cfg.routing_groups,
        )

    @property
    def model_ids(self) -> list[str]:
        return list(self._models)

    @property
    def group_ids(self) -> list[str]:
        return list(self._groups)

    def group(self, name: str) -> RoutingGroupConfig | None:
        """The routing group ``name`` names, if it names one."""
        return self._groups.get(name)

    def model(self, model_id: str) -> ModelConfig:
        return self._models[model_id]

    def member_models(self, name: str) -> list[str]:
        """The model ids a group member stands for, in the group's own order (a model: itself)."""
        group = self._groups.get(name)
        if group is None:
            return [self.resolve(name).id]
        found: list[str] = []
        for member in group.members:
            found += [m for m in self.member_models(member) if m not in found]
        return found

    def can(self, name: str, capability: Capability) -> bool:
        """Whether the model ``name`` names, or any model of the group it names, can do it."""
        return any(capability in self._models[m].capabilities for m in self.member_models(name))

    def default_model(self, role: Role) -> str:
        """The model id used when a caller names none for this role."""
        return self._defaults[role]

    def provider(self, provider_id: str) -> ProviderConfig:
        found = self._providers.get(provider_id)
        if found is None:
            known = ", ".join(self._providers) or "none"
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'provider "{provider_id}" is not configured (known: {known}); add it to '
                "[[model_provider.providers]] in palyra.toml",
                provider=provider_id,
            )
        return found

    def resolve(self, name: str) -> ModelConfig:
        """The model a client named by id or alias; unknown names are a 404 listing the ids."""
        model_id = self._names.get(name)
        if model_id is None and name in self._groups:
            model_id = self.member_models(name)[0]  # a group stands for its first model
        if model_id is None:
            known = ", ".join([*self._models, *self._groups]) or "none"
            raise PalyraError.of(
                FailureClass.NOT_FOUND,
                f'model "{name}" is not configured (known: {known}); send one of those ids or '
                "add it to [[model_provider.models]] in palyra.toml",
                param="model",
                code="model_not_found",
                http_status=404,
            )
        return self._models[model_id]

    def plan(self, name: str, required: frozenset[Capability]) -> RoutePlan:
        """The model, its fallbacks breadth-first (each once), then any capable model if
        ``auto_fallback``; models missing a capability are skipped with the reason. The same
        name and capabilities get the same (shared, read-only) plan; errors are raised afresh."""
        key = (name, required)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(name, required)
        return plan

    def _plan(self, name: str, required: frozenset[Capability]) -> RoutePlan:
        group = self._groups.get(name)
        if group is not None and name not in self._names:
            plan = self.plan_order(name, self.member_models(name), required)
            return RoutePlan(plan.targets, plan.skipped, group)
        return self.plan_order(name, [self.resolve(name).id], required)

    def plan_order(
        self, name: str, first_ids: list[str], required: frozenset[Capability]
    ) -> RoutePlan:
        """``first_ids`` in that order, then their fallbacks breadth-first (each once), then
        any capable model if ``auto_fallback``; capability skips as for :meth:`plan`."""
        first = self._models[first_ids[0]]
        order = list(first_ids)
        queue = list(first_ids)
        while queue:
            current = self._models[queue.pop(0)]
            for fallback in current.fallbacks:
                fallback_id = self._fallback_id(current, fallback)
                if fallback_id not in order:
                    order.append(fallback_id)
                    queue.append(fallback_id)
        if self._auto_fallback:
            order += [m for m in self._models if m not in order]
        targets: list[Target] = []
        skipped: list[tuple[str, str]] = []
        for model_id in order:
            model = self._models[model_id]
            missing = sorted(required - set(model.capabilities))
            if missing:
                skipped.append((model_id, f"lacks {', '.join(missing)}"))
                continue
            targets.append(
                Target(
                    model_id=model.id,
                    provider_id=model.provider,
                    upstream_model=model.upstream_model,
                    context_window=model.context_window,
                    capabilities=frozenset(model.capabilities),
                )
            )
        if not targets:
            needed = ", ".join(sorted(required))
            tried = "; ".join(f"{m} {why}" for m, why in skipped)
            raise PalyraError.of(
                FailureClass.UNSUPPORTED_CAPABILITY,
                f'no configured model can serve this request to "{name}": it needs {needed} '
                f"({tried}); send it to a model with those capabilities or add one to the "
                f'fallbacks of "{first.id}"',
                param="model",
                code="model_not_supported",
            )
        return RoutePlan(targets, skipped)

    def _fallback_id(self, model: ModelConfig, fallback: str) -> str:
        found = self._names.get(fallback)
        if found is None:
            known = ", ".join(self._models)
            raise PalyraError.of(
                FailureClass.CONFIG,
                f'model "{model.id}" lists fallback "{fallback}", which is not configured '
                f"(known: {known}); fix its fallbacks in [[model_provider.models]] of palyra.toml",
            )
        return found

    def candidates(self, name: str, required: frozenset[Capability]) -> list[Target]:
        return list(self.plan(name, required).targets)
