"""Token estimation: exact OpenAI counts, labelled estimates, images, context checks, splitting."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from palyra.model import (
    ChatRequest,
    FailureClass,
    ImagePart,
    Message,
    PalyraError,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolSpec,
)
from palyra.providers.image_tokens import anthropic_image_tokens, openai_image_tokens
from palyra.providers.tiktoken_seed import ensure_seeded, get_offline_encoding
from palyra.providers.tokens import (
    ESTIMATE_FACTOR,
    MAX_MODEL_TOKENS_PER_EVENT,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_TOOL,
    TOKENS_PER_TOOL_CALL,
    TOOLS_OVERHEAD_TOKENS,
    TokenEstimate,
    check_context_window,
    estimate_text_tokens,
    estimate_token_count,
    exact_encoding_name,
    refuse_if_too_long,
    split_text_delta,
    token_upper_bound,
    warm_up,
)


@pytest.fixture(scope="module", autouse=True)
def _seeded_tiktoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_seeded(tmp_path_factory.mktemp("tiktoken"))


def _o200k(text: str) -> int:
    return len(get_offline_encoding("o200k_base").encode_ordinary(text))


def _request(*messages: Message, **kwargs: object) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), **kwargs)  # type: ignore[arg-type]


# The example conversation from OpenAI's "How to count tokens with tiktoken" cookbook, with the
# usage.prompt_tokens the API reported for it (gpt-4-0613: 129, gpt-4o-2024-08-06: 124).
_COOKBOOK = _request(
    Message.text(
        "system",
        "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    ),
    Message(
        role=Role.SYSTEM,
        name="example_user",
        content=[TextPart(text="New synergies will help drive top-line growth.")],
    ),
    Message(
        role=Role.SYSTEM,
        name="example_assistant",
        content=[TextPart(text="Things working well together will increase revenue.")],
    ),
    Message(
        role=Role.SYSTEM,
        name="example_user",
        content=[
            TextPart(
                text="Let's circle back when we have more bandwidth to touch base on "
                "opportunities for increased leverage."
            )
        ],
    ),
    Message(
        role=Role.SYSTEM,
        name="example_assistant",
        content=[TextPart(text="Let's talk later when we're less busy about how to do better.")],
    ),
    Message.text(
        "user",
        "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    ),
)


@pytest.mark.parametrize(
    ("encoding", "text", "ids"),
    [
        ("o200k_base", "hello world", [24912, 2375]),
        ("cl100k_base", "hello world", [15339, 1917]),
        ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ],
)
def test_offline_encodings_give_the_published_token_ids(
    encoding: str, text: str, ids: list[int]
) -> None:
    assert get_offline_encoding(encoding).encode_ordinary(text) == ids


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4-5", None),
        ("llama-3.1-70b", None),
        ("davinci", None),
    ],
)
def test_exact_encoding_is_known_only_for_openai_chat_families(
    model: str, encoding: str | None
) -> None:
    assert exact_encoding_name(model) == encoding


@pytest.mark.parametrize(("model", "expected"), [("gpt-4-0613", 129), ("gpt-4o-2024-08-06", 124)])
def test_chat_overhead_matches_recorded_openai_prompt_tokens(model: str, expected: int) -> None:
    estimate = estimate_token_count(_COOKBOOK, model)
    assert estimate.input_tokens == expected
    assert not estimate.estimated
    assert estimate.encoding == exact_encoding_name(model)


def test_one_message_costs_three_plus_role_plus_content_plus_reply_priming() -> None:
    estimate = estimate_token_count(_request(Message.text("user", "hello world")), "gpt-4o")
    assert estimate.input_tokens == TOKENS_PER_MESSAGE + 1 + 2 + REPLY_PRIMING_TOKENS == 9


def test_a_name_costs_its_tokens_plus_one() -> None:
    plain = _request(Message.text("user", "hi"))
    named = _request(Message(role=Role.USER, name="alice", content=[TextPart(text="hi")]))
    added = estimate_token_count(named, "gpt-4o").input_tokens
    assert added - estimate_token_count(plain, "gpt-4o").input_tokens == _o200k("alice") + 1


def test_tool_schemas_add_the_documented_formula_and_mark_the_count_estimated() -> None:
    tool = ToolSpec(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    base = _request(Message.text("user", "weather in Oslo?"))
    with_tool = base.model_copy(update={"tools": [tool]})
    schema_json = (
        '{"description":"Weather for a city","name":"get_weather","parameters":'
        '{"properties":{"city":{"type":"string"}},"type":"object"}}'
    )
    before = estimate_token_count(base, "gpt-4o")
    after = estimate_token_count(with_tool, "gpt-4o")
    assert after.input_tokens - before.input_tokens == (
        TOOLS_OVERHEAD_TOKENS + TOKENS_PER_TOOL + _o200k(schema_json)
    )
    assert after.estimated and not before.estimated


def test_assistant_tool_calls_count_name_and_arguments() -> None:
    call = ToolCallPart(id="c1", name="get_weather", arguments='{"city":"Oslo"}')
    request = _request(Message.text("user", "hi"), Message(role=Role.ASSISTANT, content=[call]))
    alone = estimate_token_count(_request(Message.text("user", "hi")), "gpt-4o").input_tokens
    estimate = estimate_token_count(request, "gpt-4o")
    expected_call = TOKENS_PER_TOOL_CALL + _o200k("get_weather") + _o200k('{"city":"Oslo"}')
    assert estimate.input_tokens - alone == TOKENS_PER_MESSAGE + _o200k("assistant") + expected_call
    assert estimate.estimated


def test_json_schema_response_format_is_counted() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    base = _request(Message.text("user", "hi"))
    shaped = base.model_copy(
        update={"response_format": ResponseFormat(type="json_schema", json_schema=schema)}
    )
    added = estimate_token_count(shaped, "gpt-4o").input_tokens
    assert added - estimate_token_count(base, "gpt-4o").input_tokens == _o200k(
        '{"properties":{"answer":{"type":"string"}},"type":"object"}'
    )


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 765),  # OpenAI's worked example
        (2048, 4096, "high", 1105),  # OpenAI's worked example
        (4096, 8192, "low", 85),  # OpenAI's worked example
        (512, 512, "high", 255),
        (1920, 1080, "high", 1105),
        (768, 2048, "high", 1445),
        (100, 100, "auto", 255),
        (1024, 1024, None, 765),
        (None, None, "high", 1445),
        (None, None, "low", 85),
    ],
)
def test_openai_image_tile_formula(
    width: int | None, height: int | None, detail: str | None, tokens: int
) -> None:
    assert openai_image_tokens(width, height, detail) == tokens


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (200, 200, 54),  # Anthropic's table: ~54
        (1000, 1000, 1334),  # ~1334
        (1092, 1092, 1590),  # ~1590
        (4000, 3000, 1600),  # scaled to a 1568 long edge, then capped
        (None, None, 1600),
    ],
)
def test_anthropic_image_formula(width: int | None, height: int | None, tokens: int) -> None:
    assert anthropic_image_tokens(width, height) == tokens


def _image_request(image: ImagePart) -> ChatRequest:
    return _request(Message(role=Role.USER, content=[TextPart(text="what is this?"), image]))


def test_a_sized_high_detail_image_is_exact_for_openai() -> None:
    image = ImagePart(url="https://example.com/a.png", detail="high", width=1024, height=1024)
    text_only = estimate_token_count(_request(Message.text("user", "what is this?")), "gpt-4o")
    estimate = estimate_token_count(_image_request(image), "gpt-4o")
    assert estimate.input_tokens == text_only.input_tokens + 765
    assert not estimate.estimated


def test_an_auto_or_unsized_image_is_costed_high_and_marked_estimated() -> None:
    auto = ImagePart(url="https://example.com/a.png", width=1024, height=1024)
    unsized = ImagePart(url="https://example.com/a.png", detail="high")
    assert estimate_token_count(_image_request(auto), "gpt-4o").estimated
    unsized_estimate = estimate_token_count(_image_request(unsized), "gpt-4o")
    assert unsized_estimate.estimated
    text_only = estimate_token_count(_request(Message.text("user", "what is this?")), "gpt-4o")
    assert unsized_estimate.input_tokens == text_only.input_tokens + 1445


def test_claude_gets_a_scaled_o200k_estimate_plus_anthropic_image_tokens() -> None:
    image = ImagePart(url="https://example.com/a.png", width=1000, height=1000)
    gpt = estimate_token_count(_request(Message.text("user", "what is this?")), "gpt-4o")
    estimate = estimate_token_count(_image_request(image), "claude-sonnet-4-5")
    assert estimate == TokenEstimate(
        input_tokens=math.ceil(gpt.input_tokens * ESTIMATE_FACTOR) + 1334,
        estimated=True,
        encoding=None,
    )
    assert estimate.as_token_count().estimated


def test_estimate_text_tokens_is_exact_for_openai_and_scaled_otherwise() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_text_tokens(text, "gpt-4o") == _o200k(text)
    assert estimate_text_tokens(text, "gpt-4") == len(
        get_offline_encoding("cl100k_base").encode_ordinary(text)
    )
    assert estimate_text_tokens(text, "claude-opus-4") == math.ceil(_o200k(text) * ESTIMATE_FACTOR)
    assert estimate_text_tokens("", "gpt-4o") == 0


def test_special_token_text_is_counted_as_plain_text() -> None:
    assert estimate_text_tokens("<|endoftext|>", "gpt-4o") > 1


def test_context_check_refuses_with_every_number_in_the_message() -> None:
    request = _request(Message.text("user", "hello world"), max_output_tokens=100)
    with pytest.raises(PalyraError) as caught:
        check_context_window(request, "gpt-4o", context_window=50)
    error = caught.value
    assert error.failure_class is FailureClass.CONTEXT_TOO_LONG
    assert error.envelope.message == (
        "model 'gpt-4o': input 9 tokens + requested output 100 tokens = 109 > context window "
        "50; shorten the conversation or lower max_output_tokens"
    )
    assert error.envelope.model == "gpt-4o"
    assert error.envelope.failover_allowed


def test_context_check_uses_the_default_output_when_the_request_sets_none() -> None:
    request = _request(Message.text("user", "hello world"))
    assert check_context_window(request, "gpt-4o", 9).input_tokens == 9
    with pytest.raises(PalyraError, match="requested output 1 tokens = 10 > context window 9"):
        check_context_window(request, "gpt-4o", 9, default_max_output=1)


def test_context_check_says_when_the_input_count_is_an_estimate() -> None:
    request = _request(Message.text("user", "hello world " * 100))
    with pytest.raises(PalyraError, match="'claude-haiku-4': estimated input"):
        check_context_window(request, "claude-haiku-4", 100)


def test_context_check_rejects_a_nonsense_window() -> None:
    with pytest.raises(ValueError, match="context_window"):
        check_context_window(_request(Message.text("user", "x")), "gpt-4o", 0)


def test_a_small_delta_stays_whole_and_an_empty_one_gives_no_pieces() -> None:
    assert split_text_delta("hello world") == ["hello world"]
    assert split_text_delta("") == []


def test_a_large_delta_is_split_into_pieces_within_the_default_limit() -> None:
    text = "Palyra splits long deltas so clients see steady progress. " * 200
    pieces = split_text_delta(text)
    assert "".join(pieces) == text
    assert len(pieces) > 1
    assert all(_o200k(piece) <= MAX_MODEL_TOKENS_PER_EVENT for piece in pieces)


def test_split_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        split_text_delta("abc", 0)


def test_split_with_a_custom_counter_cuts_exactly_at_the_limit() -> None:
    assert split_text_delta("abcdefghij", 3, counter=len) == ["abc", "def", "ghi", "j"]


def test_a_character_heavier_than_the_limit_travels_alone() -> None:
    assert split_text_delta("a\U0001f600b", 1, counter=lambda s: 2 * len(s)) == [
        "a",
        "\U0001f600",
        "b",
    ]


_delta_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=600
)


@settings(max_examples=150, deadline=None)
@given(text=_delta_text, limit=st.integers(min_value=4, max_value=80))
def test_split_pieces_concatenate_to_the_input_and_respect_the_limit(text: str, limit: int) -> None:
    pieces = split_text_delta(text, limit)
    assert "".join(pieces) == text
    assert all(piece and _o200k(piece) <= limit for piece in pieces)


@settings(max_examples=100, deadline=None)
@given(text=_delta_text, limit=st.integers(min_value=1, max_value=3))
def test_split_with_a_tiny_limit_only_exceeds_it_for_single_characters(
    text: str, limit: int
) -> None:
    pieces = split_text_delta(text, limit)
    assert "".join(pieces) == text
    assert all(_o200k(piece) <= limit or len(piece) == 1 for piece in pieces)


def test_counting_a_hundred_thousand_tokens_takes_well_under_a_second() -> None:
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 10000
    request = _request(Message.text("user", text))
    started = time.perf_counter()
    estimate = estimate_token_count(request, "gpt-4o")
    elapsed = time.perf_counter() - started
    assert estimate.input_tokens > 100_000
    assert elapsed < 1.0, f"counting {estimate.input_tokens} tokens took {elapsed:.3f}s"


_TEXTS = st.text(
    alphabet=st.characters(min_codepoint=1, blacklist_categories=("Cs",)),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(_TEXTS, min_size=1, max_size=4),
    name=st.one_of(st.none(), st.from_regex(r"[a-z]{1,8}", fullmatch=True)),
    model=st.sampled_from(["gpt-4o", "gpt-4", "claude-haiku-4-5", "llama-3"]),
)
def test_the_byte_bound_is_never_below_the_count(
    texts: list[str], name: str | None, model: str
) -> None:
    messages = [Message.text("user", text) for text in texts]
    if name is not None:
        messages[0] = messages[0].model_copy(update={"name": name})
    request = _request(*messages)
    assert token_upper_bound(request, model) >= estimate_token_count(request, model).input_tokens


@given(texts=st.lists(_TEXTS, min_size=1, max_size=3), window=st.integers(1, 400))
@settings(max_examples=150, deadline=None)
def test_the_hot_path_check_refuses_exactly_what_the_full_check_refuses(
    texts: list[str], window: int
) -> None:
    request = _request(*(Message.text("user", text) for text in texts), max_output_tokens=5)
    for model in ("gpt-4o", "claude-haiku-4-5"):
        try:
            check_context_window(request, model, window)
        except PalyraError as full:
            with pytest.raises(PalyraError) as fast:
                refuse_if_too_long(request, model, window)
            assert fast.value.envelope == full.envelope
        else:
            refuse_if_too_long(request, model, window)


def test_the_bound_counts_tools_and_schemas_like_the_formula() -> None:
    tool = ToolSpec(name="lookup", description="find it", parameters={"type": "object"})
    request = _request(Message.text("user", "hi"), tools=[tool])
    assert (
        token_upper_bound(request, "gpt-4o") >= estimate_token_count(request, "gpt-4o").input_tokens
    )
    # One byte per ASCII character: the bound of a plain message is the formula over lengths.
    plain = _request(Message.text("user", "hello world"))
    assert token_upper_bound(plain, "gpt-4o") == REPLY_PRIMING_TOKENS + 3 + len("user") + 11


def test_warm_up_loads_each_needed_tokenizer_once() -> None:
    from palyra.providers import tokens

    tokens._counter.cache_clear()
    warm_up(["gpt-4", "gpt-4o", "claude-haiku-4-5", "llama-3"])
    assert tokens._counter.cache_info().currsize == 2  # cl100k_base and o200k_base
    warm_up([])
    assert tokens._counter.cache_info().currsize == 2
