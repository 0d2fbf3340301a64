"""The backoff schedule: exponential with full jitter, ``Retry-After`` honoured, pure.

The one retry loop in the code base (``routing.router``) asks this module whether and how long to
wait; it never decides from the message text, only from the envelope's fields.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from palyra.config.schema import ModelProviderRegistryConfig
from palyra.model import ErrorEnvelope


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one target (seconds throughout)."""

    max_retries: int = 2
    base_s: float = 0.15
    cap_s: float = 5.0
    retry_after_cap_s: float = 30.0

    @classmethod
    def from_config(cls, cfg: ModelProviderRegistryConfig) -> RetryPolicy:
        return cls(
            max_retries=cfg.max_retries,
            base_s=cfg.retry_backoff_ms / 1000,
            cap_s=cfg.retry_backoff_max_ms / 1000,
            retry_after_cap_s=cfg.retry_after_cap_ms / 1000,
        )


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Retry after ``delay_s``, or not, and why not (for the attempt trail and logs)."""

    retry: bool
    delay_s: float = 0.0
    reason: str = ""


def backoff_delay(policy: RetryPolicy, retry_index: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**retry_index)] so retries spread out."""
    ceiling = min(policy.cap_s, policy.base_s * 2.0 ** min(retry_index, 32))
    return rng.uniform(0.0, ceiling)


def decide_retry(
    policy: RetryPolicy,
    envelope: ErrorEnvelope,
    retry_index: int,
    rng: random.Random,
    *,
    time_left_s: float,
) -> RetryDecision:
    """Whether retry number ``retry_index + 1`` of the same target is worth it, and when.

    A ``Retry-After`` is waited exactly (jitter never shortens it); one longer than the cap or
    than the time left means moving on instead of waiting.
    """
    if not envelope.retryable:
        return RetryDecision(False, reason=f"{envelope.failure_class.value} is not retryable")
    if retry_index >= policy.max_retries:
        return RetryDecision(False, reason=f"max_retries ({policy.max_retries}) used up")
    if envelope.retry_after_s is not None:
        if envelope.retry_after_s > policy.retry_after_cap_s:
            return RetryDecision(
                False,
                reason=f"Retry-After {envelope.retry_after_s:g}s exceeds the cap "
                f"{policy.retry_after_cap_s:g}s",
            )
        delay = max(0.0, envelope.retry_after_s)
    else:
        delay = backoff_delay(policy, retry_index, rng)
    if delay >= time_left_s:
        return RetryDecision(False, reason=f"waiting {delay:.3f}s would cross the request deadline")
    return RetryDecision(True, delay_s=delay)
