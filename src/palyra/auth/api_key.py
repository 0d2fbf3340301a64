"""Connect an API key to a profile: check it against the provider, then store it.

The key is checked with one ``GET .../models`` (10 s, redirects never followed) before anything
is written. Only a key the provider accepted is stored: vault first, then the record; if the
record cannot be written the new secret is removed again. Re-connecting an existing API-key
profile overwrites its secret (rotation) and makes the profile healthy again.
"""

from __future__ import annotations

import httpx2

from palyra.auth.records import (
    GLOBAL_SCOPE,
    ApiKeyRefs,
    AuthProfileRecord,
    ProfileConflict,
    ProfileError,
    ProfileHealth,
    ProfileProvider,
    normalize_profile_id,
    normalize_scope,
    secret_ref,
)
from palyra.auth.registry import AuthProfileRegistry
from palyra.model import FailureClass, PalyraError, remember_secret
from palyra.providers.upstream.guard import check_base_url, make_upstream_client

OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
VALIDATION_TIMEOUT_S = 10.0
_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "openai_compatible": "OpenAI-compatible"}
_COMMANDS = {"openai": "openai", "anthropic": "anthropic", "openai_compatible": "openai"}


async def connect_openai_api_key(
    registry: AuthProfileRegistry,
    *,
    profile_id: str,
    api_key: str,
    base_url: str = OPENAI_BASE_URL,
    display_name: str | None = None,
    scope: str = GLOBAL_SCOPE,
    client: httpx2.AsyncClient | None = None,
    compatible: bool = False,
    allow_private: bool = False,
    timeout_s: float = VALIDATION_TIMEOUT_S,
) -> AuthProfileRecord:
    """Check ``api_key`` with ``GET {base_url}/models`` (Bearer) and store it under the profile.

    ``compatible`` stores an ``openai_compatible`` profile (a self-hosted or third-party server).
    """
    provider: ProfileProvider = "openai_compatible" if compatible else "openai"
    return await _connect(
        registry,
        provider,
        profile_id=profile_id,
        api_key=api_key,
        base_url=base_url,
        display_name=display_name,
        scope=scope,
        client=client,
        allow_private=allow_private,
        timeout_s=timeout_s,
    )


async def connect_anthropic_api_key(
    registry: AuthProfileRegistry,
    *,
    profile_id: str,
    api_key: str,
    base_url: str = ANTHROPIC_BASE_URL,
    display_name: str | None = None,
    scope: str = GLOBAL_SCOPE,
    client: httpx2.AsyncClient | None = None,
    allow_private: bool = False,
    timeout_s: float = VALIDATION_TIMEOUT_S,
) -> AuthProfileRecord:
    """Check ``api_key`` with ``GET {base_url}/v1/models`` (``x-api-key``) and store it."""
    return await _connect(
        registry,
        "anthropic",
        profile_id=profile_id,
        api_key=api_key,
        base_url=base_url,
        display_name=display_name,
        scope=scope,
        client=client,
        allow_private=allow_private,
        timeout_s=timeout_s,
    )


async def _connect(
    registry: AuthProfileRegistry,
    provider: ProfileProvider,
    *,
    profile_id: str,
    api_key: str,
    base_url: str,
    display_name: str | None,
    scope: str,
    client: httpx2.AsyncClient | None,
    allow_private: bool,
    timeout_s: float,
) -> AuthProfileRecord:
    pid = normalize_profile_id(profile_id)
    scope = normalize_scope(scope)
    key = api_key.strip()
    label = _LABELS[provider]
    if not key:
        raise ProfileError(f"the {label} API key for profile {pid} is empty; nothing was stored")
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ProfileError(
            f"the {label} API key for profile {pid} contains spaces, control or non-ASCII "
            "characters, which no provider issues; paste the key itself. Nothing was stored"
        )
    base = base_url.strip().rstrip("/")
    check_base_url(base, allow_private=allow_private)
    existing = await registry.find(pid)
    if existing is not None:
        _check_replaceable(existing, provider, pid)
    await validate_api_key(
        provider,
        base,
        key,
        client=client,
        timeout_s=timeout_s,
        allow_private=allow_private,
        profile=pid,
    )

    ref = secret_ref(pid, "api_key")
    await registry.vault.put(ref, key)
    if existing is not None:
        return await _rotate(registry, existing, base, display_name, scope)
    now = registry.now()
    record = AuthProfileRecord(
        profile_id=pid,
        provider=provider,
        display_name=display_name or f"{label} ({pid})",
        scope=scope,
        credential=ApiKeyRefs(api_key_ref=str(ref)),
        base_url=base,
        created_at=now,
        updated_at=now,
    )
    try:
        return await registry.create(record)
    except ProfileConflict:
        # Another connect created the profile meanwhile: ours is now a rotation of it.
        current = await registry.get(pid)
        _check_replaceable(current, provider, pid)
        return await _rotate(registry, current, base, display_name, scope)
    except BaseException:
        await registry.vault.delete(ref)
        raise


def _check_replaceable(existing: AuthProfileRecord, provider: str, pid: str) -> None:
    if existing.provider != provider or existing.credential_kind != "api_key":
        raise ProfileError(
            f"profile {pid} already exists as a {existing.provider} {existing.credential_kind} "
            f"profile; choose another --profile, or delete it first with: "
            f"palyra auth profiles delete {pid}"
        )


async def _rotate(
    registry: AuthProfileRegistry,
    existing: AuthProfileRecord,
    base: str,
    display_name: str | None,
    scope: str,
) -> AuthProfileRecord:
    changed = existing.model_copy(
        update={
            "display_name": display_name or existing.display_name,
            "scope": scope,
            "base_url": base,
            "health": ProfileHealth.OK,
            "cooling_down_until": None,
            "last_error_category": None,
            "failure_count": 0,
        }
    )
    return await registry.update(changed, expected_version=existing.version)


def models_url(provider: str, base: str) -> str:
    """Where the key check goes: OpenAI keeps ``/v1`` in its base, Anthropic's base is the host."""
    if provider == "anthropic" and not base.endswith("/v1"):
        return f"{base}/v1/models"
    return f"{base}/models"


async def validate_api_key(
    provider: ProfileProvider,
    base: str,
    api_key: str,
    *,
    client: httpx2.AsyncClient | None = None,
    timeout_s: float = VALIDATION_TIMEOUT_S,
    allow_private: bool = False,
    profile: str,
) -> None:
    """One authenticated ``GET .../models``; raise a :class:`PalyraError` unless it is 2xx."""
    remember_secret(api_key)  # an upstream may echo it in the refusal this probe reports
    url = models_url(provider, base)
    if provider == "anthropic":
        headers = {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}
    else:
        headers = {"authorization": f"Bearer {api_key}"}
    owned = client is None
    http = client or make_upstream_client(allow_private=allow_private, timeout_s=timeout_s)
    label = _LABELS[provider]
    where = f"{label} at {base}"
    try:
        response = await http.get(url, headers=headers, follow_redirects=False)
    except httpx2.TimeoutException:
        raise _failure(
            FailureClass.TIMEOUT,
            f"{where} did not answer the key check (GET {url}) in time",
            "check the base URL and this machine's network, then try again",
        ) from None
    except httpx2.TransportError as exc:
        raise _failure(
            FailureClass.CONNECTION,
            f"cannot reach {where} to check the key ({exc.__class__.__name__})",
            "check the base URL (is the server running?) and the network, then try again",
        ) from None
    finally:
        if owned:
            await http.aclose()
    status = response.status_code
    if 200 <= status < 300:
        return
    command = f"palyra auth {_COMMANDS[provider]} api-key --profile {profile}"
    if status in (401, 403):
        fc = FailureClass.AUTH_INVALID if status == 401 else FailureClass.PERMISSION_DENIED
        raise _failure(
            fc,
            f"{where} rejected the API key (HTTP {status}): it is invalid or lacks access to {url}",
            f"check the key and run again: {command}",
        )
    if status == 429:
        raise _failure(
            FailureClass.RATE_LIMITED,
            f"{where} rate-limited the key check (HTTP 429)",
            "wait a minute and run the command again",
        )
    if status >= 500:
        raise _failure(
            FailureClass.UPSTREAM_UNAVAILABLE,
            f"{where} is unavailable (HTTP {status}) and could not check the key",
            "try again later; see the provider's status page",
        )
    if 300 <= status < 400:
        target = response.headers.get("location", "another URL")
        raise _failure(
            FailureClass.CONFIG,
            f"{where} answered the key check with a redirect (HTTP {status} to {target}); "
            "redirects are never followed with a key",
            "set --base-url to the server's real API address",
        )
    raise _failure(
        FailureClass.CONFIG,
        f"{where} answered the key check (GET {url}) with HTTP {status}",
        "check --base-url: it must be the API root that serves /models",
    )


def _failure(failure_class: FailureClass, what: str, fix: str) -> PalyraError:
    return PalyraError.of(failure_class, f"{what}; nothing was stored; {fix}")


__all__ = [
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "VALIDATION_TIMEOUT_S",
    "connect_anthropic_api_key",
    "connect_openai_api_key",
    "models_url",
    "validate_api_key",
]
