"""Schemathesis over the daemon's own OpenAPI document, in process against ``create_app``.

Bounded and derandomized so it runs the same few hundred requests, in seconds, every time.
Known daemon gaps (undocumented statuses, one 500) are pinned by strict xfails, so a fix shows
up as an XPASS that asks for the xfail to be removed.
"""

from __future__ import annotations

import re

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

# Operations whose answers are not all documented (see the xfail reason), by path.
UNDOCUMENTED = (
    r"^/v1/(chat/completions|embeddings|audio/transcriptions|messages|messages/count_tokens)$"
    r"|^/console/v1/(auth|tokens)(/|$)"
)
# An operation that answers 500 to a generated request (see the xfail reason).
API_KEY_ROUTE = "/console/v1/auth/providers/{provider}/api-key"
SERVER_ERROR = f"^{re.escape(API_KEY_ROUTE)}$"


@schema.exclude(path_regex=SERVER_ERROR).parametrize()
@BOUNDED
def test_no_operation_answers_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=_headers(case.path), checks=[not_a_server_error])


# Defined only while the route exists, so the file also runs against a daemon without it.
if API_KEY_ROUTE in schema.raw_schema["paths"]:

    @pytest.mark.xfail(
        strict=True,
        reason="daemon bug: POST /console/v1/auth/providers/openai/api-key with "
        '{"api_key": "...", "profile_id": "attempts"} answers 500',
    )
    @schema.include(path_regex=SERVER_ERROR).parametrize()
    @BOUNDED
    def test_api_key_connect_answers_no_server_error(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=_headers(case.path), checks=[not_a_server_error])


@schema.exclude(path_regex=UNDOCUMENTED).parametrize()
@BOUNDED
def test_operations_answer_only_documented_statuses(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=_headers(case.path), checks=[status_code_conformance])


@pytest.mark.xfail(
    strict=True,
    reason="daemon bug: the /v1 body routes read the body by hand and document only 200, yet "
    "answer 400 to an empty body; the /console/v1/auth and /console/v1/tokens routes document "
    "200 and 422 but answer 400 (the app turns 422 into 400) and 404 (unknown ids), "
    "undeclared in their responses=",
)
@schema.include(path_regex=UNDOCUMENTED).parametrize()
@BOUNDED
def test_undocumented_operations_answer_only_documented_statuses(
    case: schemathesis.Case,
) -> None:
    case.call_and_validate(headers=_headers(case.path), checks=[status_code_conformance])
