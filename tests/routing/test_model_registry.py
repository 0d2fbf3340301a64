import pytest

from palyra.config.schema import ModelConfig, ModelProviderRegistryConfig, ProviderConfig
from palyra.model import (
    Capability,
    ChatRequest,
    FailureClass,
    ImagePart,
    Message,
    PalyraError,
    ResponseFormat,
    Role,
    TextPart,
    ToolResultPart,
    ToolSpec,
)
from palyra.routing import ModelRegistry, required_capabilities

PROVIDERS = [
    ProviderConfig(id="openai-main", kind="openai"),
    ProviderConfig(id="claude", kind="anthropic"),
]


def registry(*models: ModelConfig, auto_fallback: bool = False) -> ModelRegistry:
    return ModelRegistry.from_config(
        ModelProviderRegistryConfig(
            providers=PROVIDERS, models=list(models), auto_fallback=auto_fallback
        )
    )


def model(id: str, provider: str = "openai-main", **kw: object) -> ModelConfig:
    return ModelConfig(id=id, provider=provider, **kw)  # type: ignore[arg-type]


def test_aliases_resolve_and_unknown_names_list_the_known_ids() -> None:
    reg = registry(model("default", model="gpt-4.1", aliases=["gpt"]), model("claude", "claude"))
    assert reg.resolve("gpt").id == "default"
    with pytest.raises(PalyraError) as caught:
        reg.resolve("gtp-4")
    env = caught.value.envelope
    assert env.failure_class is FailureClass.NOT_FOUND and env.http_status == 404
    assert '"gtp-4"' in env.message and "default, claude" in env.message


def test_an_alias_used_twice_is_a_config_error() -> None:
    with pytest.raises(PalyraError) as caught:
        registry(model("a", aliases=["x"]), model("b", aliases=["x"]))
    assert caught.value.failure_class is FailureClass.CONFIG
    assert '"x"' in str(caught.value)


def test_defaults_per_role_come_from_config() -> None:
    reg = ModelRegistry.from_config(
        ModelProviderRegistryConfig(default_chat_model="c", default_embeddings_model="e")
    )
    assert reg.default_model("chat") == "c"
    assert reg.default_model("embeddings") == "e"
    assert reg.default_model("transcription") == "whisper"


def test_required_capabilities_follow_the_request() -> None:
    plain = ChatRequest(model="m", messages=[Message.text("user", "hi")])
    assert required_capabilities(plain) == {"chat"}
    rich = ChatRequest(
        model="m",
        messages=[
            Message(role=Role.USER, content=[TextPart(text="?"), ImagePart(url="https://x/i.png")])
        ],
        tools=[ToolSpec(name="lookup")],
        response_format=ResponseFormat(type="json_object"),
    )
    assert required_capabilities(rich) == {"chat", "vision", "tools", "json"}


def test_fallbacks_are_breadth_first_each_once_then_auto_fallback() -> None:
    reg = registry(
        model("a", fallbacks=["b", "c"]),
        model("b", "claude", model="sonnet", context_window=200_000, fallbacks=["d", "a"]),
        model("c", fallbacks=["b"]),
        model("d"),
        model("e"),
        model("emb", capabilities=["embeddings"]),
        auto_fallback=True,
    )
    targets = reg.candidates("a", frozenset({"chat"}))
    assert [t.model_id for t in targets] == ["a", "b", "c", "d", "e"]
    b = targets[1]
    assert (b.provider_id, b.upstream_model, b.context_window) == ("claude", "sonnet", 200_000)
    plan = reg.plan("a", frozenset({"chat"}))
    assert plan.skipped == [("emb", "lacks chat")]


def test_models_lacking_a_capability_are_skipped_with_a_reason() -> None:
    reg = registry(
        model("text-only", fallbacks=["vision"]),
        model("vision", "claude", capabilities=["chat", "vision"]),
    )
    plan = reg.plan("text-only", frozenset({"chat", "vision"}))
    assert [t.model_id for t in plan.targets] == ["vision"]
    assert plan.skipped == [("text-only", "lacks vision")]


def test_no_capable_model_is_unsupported_capability_naming_what_is_missing() -> None:
    reg = registry(model("a", fallbacks=["b"]), model("b", capabilities=["chat", "tools"]))
    with pytest.raises(PalyraError) as caught:
        reg.candidates("a", frozenset({"chat", "tools", "vision"}))
    env = caught.value.envelope
    assert env.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    assert "a lacks tools, vision; b lacks vision" in env.message


def test_a_fallback_naming_an_unknown_model_is_a_config_error() -> None:
    reg = registry(model("a", fallbacks=["ghost"]))
    with pytest.raises(PalyraError) as caught:
        reg.candidates("a", frozenset({"chat"}))
    assert caught.value.failure_class is FailureClass.CONFIG
    assert '"ghost"' in str(caught.value)


def test_a_plan_is_reused_only_for_the_same_name_and_capabilities() -> None:
    reg = registry(
        model("a", aliases=["x"], fallbacks=["b"]),
        model("b", "claude", model="sonnet", capabilities=["chat", "vision"]),
    )
    chat: frozenset[Capability] = frozenset({"chat"})
    first = reg.plan("a", chat)
    assert reg.plan("a", frozenset({"chat"})) is first
    assert [t.model_id for t in first.targets] == ["a", "b"] and first.skipped == []
    seeing = reg.plan("a", frozenset({"chat", "vision"}))
    assert [t.model_id for t in seeing.targets] == ["b"]
    assert seeing.skipped == [("a", "lacks vision")]
    assert [t.model_id for t in reg.plan("x", chat).targets] == ["a", "b"]
    assert [t.model_id for t in reg.plan("b", chat).targets] == ["b"]
    assert reg.plan("a", chat) is first and first.skipped == []
    handed_out = reg.candidates("a", chat)
    handed_out.clear()  # a caller's copy: the remembered plan is untouched
    assert [t.model_id for t in reg.candidates("a", chat)] == ["a", "b"]


def test_failed_plans_are_not_remembered_and_fail_the_same_way_again() -> None:
    reg = registry(model("a", fallbacks=["b"]), model("b", capabilities=["chat", "tools"]))
    for _ in range(2):
        with pytest.raises(PalyraError) as unknown:
            reg.plan("ghost", frozenset({"chat"}))
        assert unknown.value.failure_class is FailureClass.NOT_FOUND
        with pytest.raises(PalyraError) as unable:
            reg.plan("a", frozenset({"chat", "vision"}))
        assert unable.value.failure_class is FailureClass.UNSUPPORTED_CAPABILITY
    assert [t.model_id for t in reg.plan("a", frozenset({"chat", "tools"})).targets] == ["b"]


def test_an_image_in_any_message_needs_vision() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message.text("user", "look it up"),
            Message(
                role=Role.TOOL,
                content=[ToolResultPart(tool_call_id="c1"), ImagePart(url="https://x/i.png")],
            ),
        ],
    )
    assert required_capabilities(request) == {"chat", "vision"}
    tools_only = request.model_copy(
        update={"messages": request.messages[:1], "tools": [ToolSpec(name="f")]}
    )
    assert required_capabilities(tools_only) == {"chat", "tools"}
