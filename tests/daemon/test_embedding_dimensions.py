"""``dimensions`` past what the embedding model returns is a 400 naming the field, and nothing
goes upstream (``dimensions: 1000000000`` used to be forwarded)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from palyra.config.schema import (
    ModelConfig,
    ModelProviderRegistryConfig,
    PalyraConfig,
    ProviderConfig,
)
from palyra.model.embeddings import DEFAULT_MAX_DIMENSIONS, max_dimensions_for
from palyra.testing import FakeUpstream

# Fixture types from tests/daemon/conftest.py (not importable without a tests package).
RunningDaemon = Any
StartDaemon = Any


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def client(fake: FakeUpstream, start_daemon: StartDaemon) -> openai.OpenAI:
    embeddings: list[Any] = ["embeddings"]
    config = PalyraConfig(
        model_provider=ModelProviderRegistryConfig(
            default_chat_model="small",
            providers=[
                ProviderConfig(
                    id="oa", kind="openai", base_url=fake.openai_base_url, api_key="env:HOME"
                )
            ],
            models=[
                ModelConfig(
                    id="small",
                    provider="oa",
                    model="text-embedding-3-small",
                    capabilities=embeddings,
                ),
                ModelConfig(
                    id="custom",
                    provider="oa",
                    model="my-embedder",
                    capabilities=embeddings,
                    max_dimensions=64,
                ),
                ModelConfig(
                    id="unknown", provider="oa", model="other-embedder", capabilities=embeddings
                ),
            ],
        )
    )
    return start_daemon(config).openai_client()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("model", "too_many", "maximum"),
    [
        ("small", 1_000_000_000, 1536),
        ("small", 1537, 1536),
        ("custom", 65, 64),
        ("unknown", 1_000_000_000, DEFAULT_MAX_DIMENSIONS),
    ],
)
def test_dimensions_past_the_model_maximum_are_refused_before_any_upstream_call(
    client: openai.OpenAI, fake: FakeUpstream, model: str, too_many: int, maximum: int
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=model, input="hello", dimensions=too_many)
    assert info.value.status_code == 400
    body: Any = info.value.body
    assert body["param"] == "dimensions"
    assert (
        f'dimensions is {too_many}, more than model "{model}" returns ({maximum})'
        in (body["message"])
    )
    assert "max_dimensions" in body["message"]
    assert fake.requests == []


@pytest.mark.parametrize(("model", "dimensions"), [("small", 1536), ("small", 8), ("custom", 64)])
def test_dimensions_up_to_the_maximum_are_forwarded(
    client: openai.OpenAI, fake: FakeUpstream, model: str, dimensions: int
) -> None:
    result = client.embeddings.create(model=model, input="hello", dimensions=dimensions)
    assert len(result.data[0].embedding) == dimensions
    assert fake.requests[-1].body["dimensions"] == dimensions


def test_the_known_maximum_is_found_behind_a_vendor_prefix_and_a_setting_wins() -> None:
    assert max_dimensions_for("openai/text-embedding-3-large", None) == 3072
    assert max_dimensions_for("text-embedding-3-large", 256) == 256
    assert max_dimensions_for("nomic-embed-text", None) == DEFAULT_MAX_DIMENSIONS
