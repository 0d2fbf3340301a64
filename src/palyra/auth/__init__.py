"""Auth profiles: named credentials (API keys, OAuth tokens) whose secrets live in the vault.

``AuthProfileRegistry`` stores the records (vault refs only), ``connect_*_api_key`` validates a
key before storing it, and ``ProfileCredentialSource`` hands routing the usable credentials.
"""

from palyra.auth.records import (
    ApiKeyRefs,
    AuthProfileRecord,
    OAuthRefs,
    ProfileConflict,
    ProfileError,
    ProfileHealth,
    ProfileNotFound,
    secret_ref,
)
from palyra.auth.registry import AuthProfileRegistry, ProfilePage
from palyra.auth.tables import AUTH_PROFILES_SCHEMA

__all__ = [
    "AUTH_PROFILES_SCHEMA",
    "ApiKeyRefs",
    "AuthProfileRecord",
    "AuthProfileRegistry",
    "OAuthRefs",
    "ProfileConflict",
    "ProfileError",
    "ProfileHealth",
    "ProfileNotFound",
    "ProfilePage",
    "secret_ref",
]
