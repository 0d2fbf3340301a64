"""Where Palyra keeps its state: ``$PALYRA_STATE_DIR``, else ``$XDG_STATE_HOME/palyra``."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir(*, create: bool = True) -> Path:
    """The state directory, created 0700 on first use (and tightened if it was looser)."""
    explicit = os.environ.get("PALYRA_STATE_DIR")
    if explicit:
        path = Path(explicit).expanduser()
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "palyra"
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    return path
