"""Palyra's ASGI app for granian (``granian --interface asgi --factory granian_app:app``).

Built as ``palyra serve`` builds it for one worker (config, start-up tokens, authenticator),
so bench/stacks.py can compare granian with uvicorn and our coalescing protocol on the same app.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from palyra.config import load_config
from palyra.daemon import AppState, create_app
from palyra.daemon.security.policy import Authenticator
from palyra.daemon.security.startup_tokens import prepare_tokens
from palyra.paths import state_dir


def app() -> Any:
    cfg = load_config(Path(os.environ["PALYRA_CONFIG"])).config
    states = state_dir()
    tokens = asyncio.run(
        prepare_tokens(cfg, host="127.0.0.1", state_dir=states, environ=os.environ)
    )
    state = AppState.from_config(cfg)
    state.auth = Authenticator(
        store_url=cfg.storage.url, state_dir=states, fixed_tokens=tokens.fixed
    )
    return create_app(state)
