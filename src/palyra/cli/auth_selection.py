"""Which credential a provider of ``palyra.toml`` would use, told the way routing picks it.

``palyra auth profiles explain-selection`` and ``order`` take what users type: a provider id
from the config (``openai-main``), or a profile kind (``openai``) when it names one provider of
the config or none. The order routing follows (``ConfigCredentialSource``): the provider's
``api_key`` reference; else the profiles it names, in its order; else the profiles of its kind,
ranked; else no credential (fine only for ``openai_compatible``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from palyra.auth.records import PROVIDERS, AuthProfileRecord
from palyra.auth.selection import Selection, select_profile
from palyra.config.schema import ProviderConfig
from palyra.model import PalyraError
from palyra.routing.config_credentials import KEYED_KINDS
from palyra.vault import Vault, resolve_secret_ref


class TargetError(ValueError):
    """The argument names no provider of the config nor a profile kind, or several providers."""


@dataclass(frozen=True, slots=True)
class Target:
    """A profile kind, and the configured provider the argument named (``None``: a bare kind)."""

    kind: str
    provider: ProviderConfig | None = None

    @property
    def label(self) -> str:
        if self.provider is None:
            return self.kind
        return f"{self.provider.id} ({self.provider.kind})"


def resolve_target(text: str, providers: Sequence[ProviderConfig]) -> Target:
    """A provider id of the config first; else a kind, naming its one configured provider."""
    for provider in providers:
        if provider.id == text:
            return Target(provider.kind, provider)
    if text in PROVIDERS:
        same_kind = [p for p in providers if p.kind == text]
        if len(same_kind) > 1:
            ids = ", ".join(p.id for p in same_kind)
            raise TargetError(
                f"{text!r} is the kind of several providers in palyra.toml ({ids}); "
                "name one of them by its id"
            )
        return Target(text, same_kind[0] if same_kind else None)
    ids = ", ".join(p.id for p in providers) or "none"
    raise TargetError(
        f"unknown provider {text!r}; use a provider id from palyra.toml (there: {ids}) or a "
        f"profile kind: {', '.join(PROVIDERS)}"
    )


@dataclass(frozen=True, slots=True)
class Explanation:
    """What would authenticate requests to ``target``; ``usable`` false means they would fail."""

    target: Target
    source: str
    """``none_needed``, ``api_key``, ``named_profiles``, ``profile_selection`` or ``none``."""
    chosen: str | None
    usable: bool
    lines: tuple[str, ...] = ()
    selection: Selection | None = field(default=None, compare=False)
    profile_selection: str | None = None
    """How the provider spreads requests over its profiles (see :func:`with_spread`)."""

    def headline(self, agent_id: str | None) -> str:
        who = f" for agent {agent_id}" if agent_id else ""
        return f"{self.target.label}{who}: {self.chosen or 'no usable credential'}"

    def as_dict(self) -> dict[str, Any]:
        provider = self.target.provider
        body: dict[str, Any] = {
            "provider": self.target.kind if provider is None else provider.id,
            "kind": self.target.kind,
            "source": self.source,
            "chosen": self.chosen,
            "usable": self.usable,
            "notes": list(self.lines),
        }
        if self.profile_selection is not None:
            body["profile_selection"] = self.profile_selection
        if self.selection is not None:
            body |= {k: v for k, v in self.selection.as_dict().items() if k != "provider"}
            body["chosen"] = self.chosen
        return body


def _connect_hint(kind: str) -> str:
    command = "anthropic" if kind == "anthropic" else "openai"
    return f"palyra auth {command} api-key --profile ID"


async def explain_api_key(
    target: Target, vault: Vault | None, environ: Mapping[str, str]
) -> Explanation:
    """The provider's ``api_key`` reference, and whether it resolves here (never its value)."""
    provider = target.provider
    assert provider is not None and provider.api_key
    ref = provider.api_key
    try:
        await resolve_secret_ref(ref, vault, environ=environ)
    except PalyraError as exc:
        problem = exc.envelope.message
        return Explanation(target, "api_key", None, False, (f"- api_key {ref}: {problem}",))
    note = f"* api_key {ref} from palyra.toml resolves; auth profiles are not used for it"
    return Explanation(target, "api_key", f"api_key {ref}", True, (note,))


def explain_named(
    target: Target, found: Mapping[str, AuthProfileRecord], agent_id: str | None, now: datetime
) -> Explanation:
    """The profiles the provider names, tried in the order palyra.toml gives them."""
    provider = target.provider
    assert provider is not None
    chosen: str | None = None
    lines = []
    for position, pid in enumerate(provider.profile_ids(), start=1):
        record = found.get(pid)
        if record is None:
            reason = f"no such profile; create it with: {_connect_hint(target.kind)}"
            lines.append(f"- {pid}: {reason}".replace("--profile ID", f"--profile {pid}"))
            continue
        if record.provider != target.kind:
            lines.append(f"- {pid}: it is a {record.provider} profile, not {target.kind}")
            continue
        candidate = select_profile([record], target.kind, agent_id, now).candidates[0]
        if not candidate.usable:
            lines.append(f"- {pid}: {candidate.reason}")
        elif chosen is None:
            chosen = pid
            lines.append(f"* {pid}: chosen: first usable of the profiles palyra.toml names")
        else:
            lines.append(f"+ {pid}: usable, tried after {chosen} (position {position})")
    return Explanation(target, "named_profiles", chosen, chosen is not None, tuple(lines))


def explain_ranked(target: Target, selection: Selection) -> Explanation:
    """The kind's profiles ranked; without any, what the provider does with no credential."""
    lines = [
        f"{'*' if c.chosen else ('+' if c.usable else '-')} {c.profile_id}: {c.reason}"
        for c in selection.candidates
    ]
    if selection.chosen is not None:
        return Explanation(
            target, "profile_selection", selection.chosen, True, tuple(lines), selection
        )
    if not selection.candidates and target.provider is not None:
        if target.kind not in KEYED_KINDS:
            note = "no api_key and no profiles: requests are sent without a key"
            return Explanation(target, "none_needed", "no key", True, (note,), selection)
        lines.append(
            f'no api_key and no {target.kind} profiles: set api_key = "env:NAME" on provider '
            f'"{target.provider.id}" in palyra.toml, or connect one: {_connect_hint(target.kind)}'
        )
    elif not selection.candidates:
        lines.append(f"no {target.kind} profiles; connect one: {_connect_hint(target.kind)}")
    return Explanation(target, "profile_selection", None, False, tuple(lines), selection)


SPREAD_RULES = {
    "ordered": "the first usable profile serves every request; the next only after it fails "
    "with a credential error (401, 403, 429, quota)",
    "round_robin": "each request starts one usable profile further along, so each carries an "
    "equal share; the others follow in order if it fails",
    "rate_limit": "the usable profile with the largest share of its rate limit left (from the "
    "x-ratelimit-* / anthropic-ratelimit-* headers of its last answer) goes first; one never "
    "read or past its reset counts as full, ties keep this order, a 429 empties a profile "
    "until its retry-after",
}


def with_spread(explanation: Explanation) -> Explanation:
    """The explanation with how the provider spreads requests over its profiles
    (``profile_selection`` in palyra.toml), when it uses profiles."""
    provider = explanation.target.provider
    if provider is None or explanation.source not in ("named_profiles", "profile_selection"):
        return explanation
    mode = provider.profile_selection
    if mode == "ordered":  # the lines above already say it: first usable, then in order
        return replace(explanation, profile_selection=mode)
    note = f"profile_selection = {mode}: {SPREAD_RULES[mode]}"
    return replace(explanation, lines=(*explanation.lines, note), profile_selection=mode)


def order_problem(target: Target) -> str | None:
    """Why ordering the kind's profiles would not change what ``target`` uses, if it would not."""
    provider = target.provider
    if provider is None:
        return None
    if provider.kind == "deterministic":
        return f'provider "{provider.id}" is deterministic: it uses no credentials'
    if provider.api_key:
        return (
            f'provider "{provider.id}" takes its key from api_key = "{provider.api_key}" in '
            "palyra.toml, so profile order does not apply to it; remove api_key to use profiles"
        )
    if provider.profile_ids():
        return (
            f'provider "{provider.id}" names its profiles in palyra.toml '
            f"({', '.join(provider.profile_ids())}), in the order it tries them; reorder them "
            "there (auth_profile_id, then auth_profile_ids)"
        )
    return None
