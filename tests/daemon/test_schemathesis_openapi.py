"""Schemathesis over the daemon's own OpenAPI document, in process against ``create_app``.

Bounded and derandomized so it runs the same few hundred requests, in seconds, every time.
The POST routes declare no request body and only a 200 response, so schemathesis can only send
empty bodies and every 400 they answer is "undocumented"; that gap is pinned by a strict xfail.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from palyra.config.schema import default_config
from palyra.daemon import AppState, create_app
from palyra.daemon.security import Authenticator
from palyra.daemon.tokens_store import TokenKind, generate_token

CLIENT_TOKEN = generate_token(TokenKind.CLIENT)
ADMIN_TOKEN = generate_token(TokenKind.ADMIN)


def _app() -> object:
    state = AppState.from_config(default_config())
    state.auth = Authenticator(
        fixed_tokens={CLIENT_TOKEN: TokenKind.CLIENT, ADMIN_TOKEN: TokenKind.ADMIN}
    )
    return create_app(state)


def _headers(path: str) -> dict[str, str]:
    token = ADMIN_TOKEN if path.startswith("/console/") else CLIENT_TOKEN
    return {"authorization": f"Bearer {token}"}


schema = schemathesis.openapi.from_asgi("/openapi.json", _app(), headers=_headers("/v1"))


BOUNDED = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@BOUNDED
def test_no_operation_answers_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=_headers(case.path), checks=[not_a_server_error])


# The routes that read a request body by hand; everything else must document what it answers.
BODY_ROUTES = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/audio/transcriptions",
    "/v1/messages",
    "/v1/messages/count_tokens",
)


@schema.exclude(method="POST", path=list(BODY_ROUTES)).parametrize()
@BOUNDED
def test_other_operations_answer_only_documented_statuses(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=_headers(case.path), checks=[status_code_conformance])


@pytest.mark.xfail(
    strict=True,
    reason="daemon bug: POST /v1/chat/completions, /v1/embeddings, /v1/audio/transcriptions, "
    "/v1/messages and /v1/messages/count_tokens answer 400 to an empty body but document only "
    "200 (no responses= or request body declared on their add_api_route)",
)
@schema.include(method="POST", path=list(BODY_ROUTES)).parametrize()
@BOUNDED
def test_body_operations_answer_only_documented_statuses(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=_headers(case.path), checks=[status_code_conformance])
