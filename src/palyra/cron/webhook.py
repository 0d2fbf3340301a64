"""Webhook delivery of a finished run: a signed POST, retried on 5xx and connection errors.

The receiver checks ``X-Palyra-Signature: sha256=<hex>``, an HMAC-SHA256 with the shared secret
over ``<X-Palyra-Timestamp>.<body>`` (the exact bytes sent), and refuses old timestamps to stop
replays. The secret is a reference resolved at each delivery, so rotating it in the vault needs
no job edit; it never appears in a log, an event or an error. The POST goes through the
upstream guard: private addresses are refused unless ``[cron] webhook_allow_private``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
import orjson

from palyra.model import PalyraError

SIGNATURE_HEADER = "X-Palyra-Signature"
TIMESTAMP_HEADER = "X-Palyra-Timestamp"
DELIVERY_HEADER = "X-Palyra-Delivery"
DEFAULT_BACKOFF_S = (1.0, 5.0, 30.0)

log = logging.getLogger("palyra.cron.webhook")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and what the tests do): constant-time compare."""
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def safe_url(url: str) -> str:
    """The URL for logs and events: scheme, host and path, no query (it may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    status: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "attempts": self.attempts,
            "status": self.status,
            "error": self.error,
        }


async def deliver(
    client: httpx2.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    delivery_id: str,
    secret: Callable[[], Awaitable[str]],
    clock: Callable[[], float],
    backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DeliveryResult:
    """POST ``payload`` until a non-5xx answer or the backoff ladder runs out.

    A 4xx is final (the receiver refused it; sending it again changes nothing) except 408/429.
    """
    body = orjson.dumps(payload)
    attempts = len(backoff_s) + 1
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            key = await secret()
        except Exception as exc:  # a missing or unreadable secret: no point retrying
            return DeliveryResult(False, attempt - 1, None, f"secret: {exc}")
        timestamp = int(clock())
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(key, timestamp, body),
            DELIVERY_HEADER: delivery_id,
            "user-agent": "palyra-cron",
        }
        try:
            response = await client.post(url, content=body, headers=headers)
            status, error = response.status_code, None
            await response.aclose()
            if status < 300:
                return DeliveryResult(True, attempt, status, None)
            if status < 500 and status not in (408, 429):
                return DeliveryResult(False, attempt, status, f"refused with HTTP {status}")
            error = f"HTTP {status}"
        except httpx2.HTTPError as exc:
            status, error = None, _error_text(exc)
        except PalyraError as exc:  # the upstream guard refused the address: final
            why = exc.envelope.message.split(";", 1)[0].replace("upstream ", "", 1)
            error = f"{why}; to allow it set [cron] webhook_allow_private = true"
            log.warning("webhook %s for run %s: %s", safe_url(url), delivery_id, error)
            return DeliveryResult(False, attempt, None, error)
        if attempt < attempts:
            delay = backoff_s[attempt - 1]
            log.info(
                "webhook %s for run %s: attempt %d failed (%s); again in %gs",
                safe_url(url),
                delivery_id,
                attempt,
                error,
                delay,
            )
            await sleep(delay)
    log.warning(
        "webhook %s for run %s not delivered after %d attempts (%s)",
        safe_url(url),
        delivery_id,
        attempts,
        error,
    )
    return DeliveryResult(False, attempts, status, error)


def _error_text(exc: Exception) -> str:
    """The exception's class and message; the guard's refusals name the reason."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
