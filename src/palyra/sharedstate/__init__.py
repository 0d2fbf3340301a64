"""State shared by replicas (Redis, optional): the link and its degrade rule, revocation notices."""

from palyra.sharedstate.link import RECHECK_S, SharedStateLink, shown_url
from palyra.sharedstate.revocations import RevocationListener, publish_revoked

__all__ = ["RECHECK_S", "RevocationListener", "SharedStateLink", "publish_revoked", "shown_url"]
