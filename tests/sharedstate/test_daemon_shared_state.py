"""The daemon with ``[storage] redis_url``: routing state on Redis, timed on the wall clock."""

from __future__ import annotations

import pytest

from palyra.config.schema import PalyraConfig, StorageConfig
from palyra.daemon import AppState
from palyra.model import PalyraError
from palyra.routing import InMemoryBreakerStore
from palyra.routing.breaker_redis import RedisBreakerStore
from palyra.routing.clock import SystemClock, WallClock


def test_without_redis_url_breakers_are_per_process() -> None:
    state = AppState.from_config(PalyraConfig())
    assert state.shared is None
    assert type(state.runtime.breakers._store) is InMemoryBreakerStore
    assert type(state.runtime.breakers._clock) is SystemClock


def test_with_redis_url_breakers_live_in_redis_on_the_wall_clock() -> None:
    config = PalyraConfig(storage=StorageConfig(redis_url="redis://127.0.0.1:6379/15"))
    state = AppState.from_config(config)  # builds without connecting
    assert state.shared is not None and state.shared._client is None
    assert isinstance(state.runtime.breakers._store, RedisBreakerStore)
    assert isinstance(state.runtime.breakers._clock, WallClock)


def test_a_bad_redis_url_stops_the_daemon_with_the_field_named() -> None:
    config = PalyraConfig(storage=StorageConfig(redis_url="redis://"))
    with pytest.raises(PalyraError) as caught:
        AppState.from_config(config)
    assert caught.value.envelope.message.startswith("[storage] redis_url names no host")
