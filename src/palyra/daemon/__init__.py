"""The HTTP daemon: FastAPI surfaces over the neutral contract."""

from palyra.daemon.app import create_app
from palyra.daemon.state import AppState

__all__ = ["AppState", "create_app"]
