"""Security checks: secrets only as references, one credential source (base URLs are checked by
:mod:`palyra.config.provider_rules`, with the rule start-up applies).

No message here ever contains the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from palyra.config.document import MP, entries, section, text, texts
from palyra.config.problems import Finding
from palyra.vault.errors import InvalidVaultRef
from palyra.vault.refs import VaultRef

SECRET_REF_PREFIXES = ("env:", "vault:", "file:")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_secret_reference(value: str) -> bool:
    """True for ``env:NAME``, ``vault:scope/key`` or ``file:PATH`` (shape only, never resolved)."""
    return value.startswith(SECRET_REF_PREFIXES)


def reference_problem(value: str) -> str | None:
    """Why a reference is malformed, or ``None`` when it is well formed."""
    kind, _, rest = value.partition(":")
    if kind == "env" and not _ENV_NAME.match(rest):
        return "env: references name a variable, e.g. env:OPENAI_API_KEY"
    if kind == "vault":
        try:
            VaultRef.parse(rest)
        except InvalidVaultRef:
            return (
                "vault: references are <scope>/<name> with scope global, agent:<id> or "
                "profile:<id>, e.g. vault:global/openai"
            )
    if kind == "file" and not rest.strip():
        return "file: references name a path, e.g. file:/run/secrets/openai"
    return None


def _vault_key(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "-", name.lower())[:128] or "secret"


def _api_keys(document: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    for i, table in entries(document, "providers"):
        provider = text(table, "id") or f"#{i}"
        api_key = text(table, "api_key")
        if api_key is None:
            continue
        path = (MP, "providers", i, "api_key")
        if not is_secret_reference(api_key):
            key = _vault_key(provider)
            findings.append(
                Finding(
                    path,
                    f'provider "{provider}" has a literal API key; config files hold references '
                    f"only. Store the key with `palyra vault put global/{key}` and set "
                    f'api_key = "vault:global/{key}" (or "env:NAME" / "file:PATH")',
                )
            )
        elif (why := reference_problem(api_key)) is not None:
            findings.append(Finding(path, f'provider "{provider}" api_key is malformed: {why}'))
        if table.get("auth_profile_id") or table.get("auth_profile_ids"):
            findings.append(
                Finding(
                    path,
                    f'provider "{provider}" sets both api_key and auth_profile_id; keep one '
                    "(an auth profile rotates and refreshes credentials, api_key is fixed)",
                )
            )
    return findings


def _client_tokens(document: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    for j, token in texts(section(document, "daemon"), "client_tokens"):
        path = ("daemon", "client_tokens", j)
        if not is_secret_reference(token):
            findings.append(
                Finding(
                    path,
                    "client token is a literal value; config files hold references only. "
                    "Store it with `palyra vault put global/client-token` and list "
                    '"vault:global/client-token" (or "env:PALYRA_CLIENT_TOKEN"), '
                    "or use `palyra token create`",
                )
            )
        elif (why := reference_problem(token)) is not None:
            findings.append(Finding(path, f"client token reference is malformed: {why}"))
    return findings


def check_security(document: Mapping[str, Any]) -> list[Finding]:
    return [*_api_keys(document), *_client_tokens(document)]
