"""State shared by replicas (Redis, optional): the link and its degrade rule."""

from palyra.sharedstate.link import RECHECK_S, SharedStateLink, shown_url

__all__ = ["RECHECK_S", "SharedStateLink", "shown_url"]
