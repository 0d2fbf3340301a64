"""Routing: which model and provider serve a request, and what happens when they fail."""

from palyra.routing.breaker import BreakerStore, CircuitBreakers, InMemoryBreakerStore
from palyra.routing.breaker_state import Admission, BreakerKey, BreakerState
from palyra.routing.clock import Clock, ManualClock, SystemClock
from palyra.routing.health import HealthTracker, ScopeHealth
from palyra.routing.leases import Lease, LeaseManager
from palyra.routing.registry import ModelRegistry, RoutePlan, Target, required_capabilities
from palyra.routing.retry import RetryDecision, RetryPolicy, backoff_delay, decide_retry
from palyra.routing.router import CredentialSource, RoutedResponse, Router, RoutingError
from palyra.routing.stream import RoutedStream
from palyra.routing.trail import Attempt, AttemptTrail, Skip

__all__ = [
    "Admission",
    "Attempt",
    "AttemptTrail",
    "BreakerKey",
    "BreakerState",
    "BreakerStore",
    "CircuitBreakers",
    "Clock",
    "CredentialSource",
    "HealthTracker",
    "InMemoryBreakerStore",
    "Lease",
    "LeaseManager",
    "ManualClock",
    "ModelRegistry",
    "RetryDecision",
    "RetryPolicy",
    "RoutePlan",
    "RoutedResponse",
    "RoutedStream",
    "Router",
    "RoutingError",
    "ScopeHealth",
    "Skip",
    "SystemClock",
    "Target",
    "backoff_delay",
    "decide_retry",
    "required_capabilities",
]
