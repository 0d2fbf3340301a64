"""Shared pieces of the end-to-end routing tests: configs pointing at real fake upstreams."""

from __future__ import annotations

import socket
from typing import Any

from palyra.config.schema import (
    BreakerConfig,
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.model import ChatRequest, Message

KEY_ENV = "PALYRA_E2E_KEY"
KEY = "sk-e2e-good-key"


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def anthropic_provider(pid: str, base_url: str, **extra: Any) -> ProviderConfig:
    return ProviderConfig(
        id=pid, kind="anthropic", base_url=base_url, api_key=f"env:{KEY_ENV}", **extra
    )


def openai_provider(pid: str, base_url: str, **extra: Any) -> ProviderConfig:
    return ProviderConfig(
        id=pid, kind="openai", base_url=base_url, api_key=f"env:{KEY_ENV}", **extra
    )


def two_model_config(
    primary: ProviderConfig,
    fallback: ProviderConfig | None,
    *,
    primary_model: str = "claude-haiku-4-5",
    fallback_model: str = "gpt-4o-mini",
    breaker: BreakerConfig | None = None,
    **settings: Any,
) -> PalyraConfig:
    """``main`` on ``primary`` with ``backup`` (on ``fallback``) as its fallback; tiny delays."""
    providers = [primary] + ([fallback] if fallback else [])
    models = [
        ModelConfig(
            id="main",
            provider=primary.id,
            model=primary_model,
            fallbacks=["backup"] if fallback else [],
        )
    ]
    if fallback is not None:
        models.append(ModelConfig(id="backup", provider=fallback.id, model=fallback_model))
    values: dict[str, Any] = {
        "request_timeout_ms": 2000,
        "request_deadline_ms": 5000,
        "retry_backoff_ms": 1,
        "retry_backoff_max_ms": 5,
        **settings,
    }
    return PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="main",
            providers=providers,
            models=models,
            breaker=breaker or BreakerConfig(),
            **values,
        )
    )


def ask(text: str = "hello there", model: str = "main") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message.text("user", text)])
