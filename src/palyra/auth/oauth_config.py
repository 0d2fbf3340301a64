"""Where OpenAI's OAuth endpoints are, and the checks an endpoint URL must pass."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from palyra.model import FailureClass, PalyraError
from palyra.net.base_url import ADDRESS_REFUSED, UrlProblem, base_url_problem, shown_url

DEFAULT_ISSUER = "https://auth.openai.com"
DEFAULT_AUTHORIZATION_ENDPOINT = "https://auth.openai.com/oauth/authorize"
DEFAULT_TOKEN_ENDPOINT = "https://auth.openai.com/oauth/token"
# The public (secret-less) PKCE client of OpenAI's own CLI; its loopback redirect is allow-listed.
DEFAULT_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
DEFAULT_SCOPES = "openid profile email offline_access"
DEFAULT_VALIDATION_BASE_URL = "https://api.openai.com/v1"


def check_endpoint(url: str, *, what: str) -> str:
    """Refuse an endpoint the base URL rule refuses (:func:`palyra.net.base_url.base_url_problem`,
    never a private address: the sign-in client does not reach one) or that has a query; ``what``
    names the setting in the error. An address refusal has the code ``upstream_address_refused``."""
    name = f"OpenAI OAuth {what}"
    problem = base_url_problem(
        url, allow_private=False, what=name, private_hint="OAuth endpoints must be public"
    )
    if problem is None and urlsplit(url.strip()).query:
        problem = UrlProblem(f"{name} {shown_url(url)!r} has a query; remove it")
    if problem is not None:
        raise PalyraError.of(
            FailureClass.CONFIG,
            problem.message,
            code=ADDRESS_REFUSED if problem.address else "invalid_url",
        )
    return url.strip()


def normalize_scopes(scopes: str) -> str:
    """Space-joined, de-duplicated scopes in the given order; empty means the default set."""
    seen: list[str] = []
    for scope in scopes.split():
        if scope not in seen:
            seen.append(scope)
    return " ".join(seen) or DEFAULT_SCOPES


@dataclass(frozen=True)
class OpenAIOAuthConfig:
    """OpenAI's endpoints by default; tests and proxies point them at another issuer.

    ``validation_base_url`` is where the new access token is checked with ``GET /models``;
    ``None`` skips the check (for test issuers whose tokens no model API accepts).
    """

    issuer: str = DEFAULT_ISSUER
    authorization_endpoint: str = DEFAULT_AUTHORIZATION_ENDPOINT
    token_endpoint: str = DEFAULT_TOKEN_ENDPOINT
    client_id: str = DEFAULT_CLIENT_ID
    scopes: str = DEFAULT_SCOPES
    validation_base_url: str | None = DEFAULT_VALIDATION_BASE_URL

    def __post_init__(self) -> None:
        check_endpoint(self.authorization_endpoint, what="authorization_endpoint")
        check_endpoint(self.token_endpoint, what="token_endpoint")
        if self.validation_base_url is not None:
            check_endpoint(self.validation_base_url, what="validation_base_url")
        if not self.client_id.strip():
            raise PalyraError.of(
                FailureClass.CONFIG,
                "OpenAI OAuth client_id is empty; pass --client-id or leave it unset for "
                f"the default ({DEFAULT_CLIENT_ID})",
            )

    @classmethod
    def for_issuer(cls, issuer: str, **overrides: str | None) -> OpenAIOAuthConfig:
        """Endpoints at ``<issuer>/oauth/authorize`` and ``<issuer>/oauth/token``."""
        base = check_endpoint(issuer, what="issuer").rstrip("/")
        values: dict[str, str | None] = {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
