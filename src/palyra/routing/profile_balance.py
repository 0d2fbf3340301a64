"""``ProfileBalancer``: the order a provider's usable auth profiles are tried in, by load.

A provider's ``profile_selection`` says how its profiles share the requests:

- ``ordered`` (the default): the credential source's order; the next profile only after the
  first failed with a credential error (401, 403, 429, quota).
- ``round_robin``: each request starts one profile further along, so N profiles carry about
  1/N of the requests each; the others follow in order as failover.
- ``rate_limit``: the profile with the largest share of its rate limit left goes first, read
  from the upstream's ``x-ratelimit-*`` / ``anthropic-ratelimit-*`` headers of that profile's
  last answer (see :mod:`palyra.routing.rate_limits`). A profile never read, or whose reading
  has passed its reset, counts as full (so each gets measured); a 429 counts as empty until its
  retry-after. Ties keep the credential source's order.

State is per process and bounded by the configured providers and their profiles.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from palyra.routing.rate_limits import RateLimitReading, read_rate_limits

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Held:
    """A reading and the routing-clock time it stops holding."""

    reading: RateLimitReading
    until: float


class ProfileBalancer:
    """Orders credentials per provider; fed the answer headers of each profile's calls."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._turns: dict[str, itertools.count[int]] = {}
        self._held: dict[tuple[str, str], Held] = {}

    def order(
        self,
        provider_id: str,
        mode: str,
        credentials: Sequence[C],
        profile_of: Callable[[C], str | None],
        now: float,
    ) -> Sequence[C]:
        """``credentials`` in the order ``mode`` gives them now (the same list for ordered)."""
        if len(credentials) < 2 or mode == "ordered":
            return credentials
        if mode == "round_robin":
            turn = next(self._turns.setdefault(provider_id, itertools.count())) % len(credentials)
            return [*credentials[turn:], *credentials[:turn]]
        shares = [self.share(provider_id, profile_of(c), now) for c in credentials]
        ranked = sorted(range(len(credentials)), key=lambda i: (-shares[i], i))
        return [credentials[i] for i in ranked]

    def share(self, provider_id: str, profile_id: str | None, now: float) -> float:
        """The share of its rate limit a profile has left as far as this process knows."""
        if profile_id is None:
            return 1.0
        held = self._held.get((provider_id, profile_id))
        if held is None or now >= held.until:
            return 1.0
        return held.reading.share

    def reading(self, provider_id: str, profile_id: str, now: float) -> RateLimitReading | None:
        held = self._held.get((provider_id, profile_id))
        return None if held is None or now >= held.until else held.reading

    def observe(
        self, provider_id: str, profile_id: str, headers: Mapping[str, str], now: float
    ) -> None:
        """Note what an answer's headers say about the profile's rate limit (if anything)."""
        reading = read_rate_limits(headers, self._wall())
        if reading is not None:
            self._held[provider_id, profile_id] = Held(reading, now + reading.reset_s)

    def exhausted(
        self, provider_id: str, profile_id: str, retry_after_s: float | None, now: float
    ) -> None:
        """A 429: the profile has nothing left until ``retry_after_s`` (else a minute)."""
        wait = retry_after_s if retry_after_s is not None else 60.0
        empty = RateLimitReading(0.0, "requests", 0, 0, wait)
        self._held[provider_id, profile_id] = Held(empty, now + wait)
