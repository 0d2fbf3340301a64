"""Which ``palyra.toml`` to read: ``--config``, else ``$PALYRA_CONFIG``, else XDG, else defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CONFIG_ENV_VAR = "PALYRA_CONFIG"


@dataclass(frozen=True, slots=True)
class ConfigLocation:
    """The file to read (``None``: built-in defaults) and why it was chosen.

    ``required`` is true when the user named the file, so a missing file is an error rather
    than a reason to fall back to defaults.
    """

    path: Path | None
    candidate: Path
    reason: str
    required: bool


def xdg_config_file(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/palyra/palyra.toml``; unset, empty or relative means ``~/.config``."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and Path(xdg).is_absolute():
        base = Path(xdg)
    else:
        home = env.get("HOME")
        base = (Path(home) if home else Path.home()) / ".config"
    return base / "palyra" / "palyra.toml"


def discover_config(explicit: Path | None, env: Mapping[str, str]) -> ConfigLocation:
    """Apply the discovery order. Only the XDG file may be absent without it being an error."""
    if explicit is not None:
        return ConfigLocation(explicit, explicit, "from --config", required=True)
    named = env.get(CONFIG_ENV_VAR, "")
    if named:
        path = Path(named).expanduser()
        return ConfigLocation(path, path, f"from ${CONFIG_ENV_VAR}", required=True)
    candidate = xdg_config_file(env)
    if candidate.is_file():
        return ConfigLocation(candidate, candidate, "from $XDG_CONFIG_HOME", required=False)
    return ConfigLocation(
        None,
        candidate,
        f"no file at {candidate}; using built-in defaults (a deterministic provider)",
        required=False,
    )
