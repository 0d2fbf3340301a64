"""``VaultRef``: where a secret lives, ``<scope>/<name>``, with an optional ``vault:`` prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

from palyra.vault.errors import InvalidVaultRef

NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
SCOPE_KINDS = ("agent", "profile")
_EXAMPLES = "e.g. global/openai, agent:ops/api_key, profile:openai-default/refresh_token"


@dataclass(frozen=True, order=True)
class VaultRef:
    """A parsed, validated secret location. Safe to log: it holds no secret."""

    scope: str
    name: str

    def __post_init__(self) -> None:
        _check_scope(self.scope, f"{self.scope}/{self.name}")
        if not NAME_PATTERN.match(self.name):
            raise InvalidVaultRef(
                f"vault ref {self.scope}/{self.name!s}: the name {self.name!r} must be 1-128 "
                f"characters of A-Z a-z 0-9 . _ - ({_EXAMPLES})"
            )

    @classmethod
    def parse(cls, text: str) -> VaultRef:
        """Parse ``vault:<scope>/<name>`` or ``<scope>/<name>``."""
        body = text.strip()
        body = body.removeprefix("vault:")
        scope, sep, name = body.partition("/")
        if not sep:
            raise InvalidVaultRef(
                f"vault ref {text!r} has no '/' between scope and name ({_EXAMPLES})"
            )
        if "/" in name:
            raise InvalidVaultRef(
                f"vault ref {text!r} has more than one '/'; names cannot contain '/' ({_EXAMPLES})"
            )
        return cls(scope, name)

    @property
    def uri(self) -> str:
        """The form used in config files: ``vault:<scope>/<name>``."""
        return f"vault:{self}"

    def __str__(self) -> str:
        return f"{self.scope}/{self.name}"


def check_scope(scope: str) -> str:
    """Validate a scope on its own (for ``list --scope``); returns it unchanged."""
    _check_scope(scope, scope)
    return scope


def _check_scope(scope: str, shown: str) -> None:
    if scope == "global":
        return
    kind, sep, ident = scope.partition(":")
    if not sep or kind not in SCOPE_KINDS:
        raise InvalidVaultRef(
            f"vault ref {shown!r}: unknown scope {scope!r}; use global, agent:<id> or "
            f"profile:<id> ({_EXAMPLES})"
        )
    if not NAME_PATTERN.match(ident):
        raise InvalidVaultRef(
            f"vault ref {shown!r}: the {kind} id {ident!r} must be 1-128 characters of "
            "A-Z a-z 0-9 . _ -"
        )
