"""The daemon's OpenAPI document declares the hand-read bodies and never FastAPI's unused 422."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any


@pytest.fixture
def document(daemon: RunningDaemon) -> dict[str, Any]:
    doc: dict[str, Any] = httpx2.get(f"{daemon.url}/openapi.json", headers=daemon.headers).json()
    return doc


@pytest.mark.parametrize(
    ("path", "media", "required"),
    [
        ("/v1/chat/completions", "application/json", ["model", "messages"]),
        ("/v1/embeddings", "application/json", ["model", "input"]),
        ("/v1/responses", "application/json", ["model"]),
        ("/v1/messages", "application/json", ["model", "max_tokens", "messages"]),
        ("/v1/messages/count_tokens", "application/json", ["model", "messages"]),
        ("/v1/audio/transcriptions", "multipart/form-data", ["file", "model"]),
    ],
)
def test_body_routes_declare_their_required_fields(
    document: dict[str, Any], path: str, media: str, required: list[str]
) -> None:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"][media]["schema"]["required"] == required


def test_no_operation_documents_a_422_and_console_ones_document_400(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        for operation in item.values():
            assert "422" not in operation["responses"], path
            if path.startswith("/console/v1/auth/profiles"):
                assert "400" in operation["responses"], path
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})


def test_stored_response_routes_document_their_path_parameter_and_404(
    document: dict[str, Any],
) -> None:
    item = document["paths"]["/v1/responses/{response_id}"]
    for method in ("get", "delete"):
        [param] = item[method]["parameters"]
        assert (param["name"], param["in"], param["required"]) == ("response_id", "path", True)
        assert "404" in item[method]["responses"]


def test_model_routes_document_the_id_parameter_the_paging_query_and_404(
    document: dict[str, Any],
) -> None:
    one = document["paths"]["/v1/models/{model_id}"]["get"]
    assert [p["name"] for p in one["parameters"]] == ["model_id"]
    assert "404" in one["responses"]
    listing = document["paths"]["/v1/models"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["limit", "after_id", "before_id"]


def test_anthropic_routes_document_anthropic_error_bodies(document: dict[str, Any]) -> None:
    error = document["paths"]["/v1/messages"]["post"]["responses"]["429"]
    schema = error["content"]["application/json"]["schema"]
    assert schema["properties"]["type"] == {"const": "error"}


def test_api_key_with_characters_a_header_cannot_carry_is_a_400_without_echo(
    daemon: RunningDaemon,
) -> None:
    secret = "sk-caf\u00e9-secret"
    response = httpx2.post(
        f"{daemon.url}/console/v1/auth/providers/openai/api-key",
        headers=daemon.admin_headers,
        json={"profile_id": "p1", "api_key": secret, "base_url": "http://127.0.0.1:9/v1"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "api_key" in error["message"] and "HTTP header" in error["message"]
    assert secret not in response.text
