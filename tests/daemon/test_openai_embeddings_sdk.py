"""``POST /v1/embeddings`` driven by the official ``openai`` SDK over real HTTP."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import httpx2
import openai
import pytest
from openai.types import CreateEmbeddingResponse

from palyra.config.schema import default_config
from palyra.daemon import AppState
from palyra.daemon.surfaces.openai.media_format import encode_vector
from palyra.model import Limits
from palyra.providers.deterministic import hash_embedding

RunningDaemon = Any
StartDaemon = Any


def test_float_and_base64_encodings_give_the_same_vectors(client: openai.OpenAI) -> None:
    texts = ["the quick fox", "a lazy dog"]
    floats = client.embeddings.create(model="embed", input=texts, encoding_format="float")
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    decoded = client.embeddings.create(model="embed", input=texts)
    assert [d.index for d in floats.data] == [0, 1]
    float32 = [
        [struct.unpack("<f", struct.pack("<f", x))[0] for x in v]
        for v in (hash_embedding(t, 256) for t in texts)
    ]
    assert [d.embedding for d in decoded.data] == float32
    assert [d.embedding for d in floats.data] == [hash_embedding(t, 256) for t in texts]
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (6, 6)
    assert floats.model == "deterministic-embed"


def test_dimensions_are_honoured_and_vectors_stay_unit_length(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="embed", input="hello there", dimensions=8)
    [item] = result.data
    assert len(item.embedding) == 8
    assert math.isclose(math.fsum(x * x for x in item.embedding), 1.0, rel_tol=1e-6)


def test_response_validates_strictly_against_the_sdk_type(daemon: RunningDaemon) -> None:
    for fmt in ("float", "base64"):
        response = httpx2.post(
            f"{daemon.url}/v1/embeddings",
            json={"model": "embed", "input": "x y", "encoding_format": fmt, "user": "u"},
            headers=daemon.headers,
        )
        assert response.status_code == 200
        assert response.headers["x-palyra-model"] == "embed"
        data = response.json()
        if fmt == "float":
            CreateEmbeddingResponse.model_validate(data, strict=True)
        else:
            raw = base64.b64decode(data["data"][0]["embedding"])
            assert len(raw) == 256 * 4
    assert set(data) == {"object", "data", "model", "usage"}


def test_base64_is_little_endian_float32() -> None:
    assert (
        encode_vector([1.0, -0.5], "base64")
        == base64.b64encode(b"\x00\x00\x80\x3f\x00\x00\x00\xbf").decode()
    )
    assert encode_vector([1.0], "float") == [1.0]


def test_token_array_input_is_refused_explaining_only_text_is_accepted(
    client: openai.OpenAI,
) -> None:
    for tokens in ([1, 2, 3], [[1, 2], [3]]):
        with pytest.raises(openai.BadRequestError) as info:
            client.embeddings.create(model="embed", input=tokens)
        assert "Palyra embeds text only" in info.value.message
        assert info.value.param == "input"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"model": "embed", "input": ', "not valid JSON"),
        (b'{"model": "embed"}', "input must be a string or a non-empty array"),
        (b'{"model": "embed", "input": []}', "input must be a string or a non-empty array"),
        (b'{"model": "embed", "input": ""}', "an embedding input is empty"),
        (b'{"model": "embed", "input": "x", "dimensions": 0}', "dimensions"),
        (b'{"model": "embed", "input": "x", "encoding_format": "hex"}', "encoding_format"),
    ],
    ids=["truncated", "no-input", "empty-list", "empty-string", "zero-dims", "bad-format"],
)
def test_invalid_bodies_are_400_in_openai_shape(
    daemon: RunningDaemon, body: bytes, expected: str
) -> None:
    response = httpx2.post(
        f"{daemon.url}/v1/embeddings",
        content=body,
        headers=daemon.headers | {"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert expected in error["message"]


def test_unknown_model_is_404_and_a_chat_model_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="ada-9", input="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as unable:
        client.embeddings.create(model="default", input="x")
    assert "does not support embeddings" in unable.value.message
    assert "use one of: embed" in unable.value.message


def test_input_count_limit_is_checked(start_daemon: StartDaemon) -> None:
    state = AppState.from_config(default_config(), limits=Limits(max_embedding_inputs=1))
    client = start_daemon(state).openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="embed", input=["a", "b"])
    assert info.value.code == "limit_exceeded"
    assert "2 embedding inputs; the limit is 1" in info.value.message
