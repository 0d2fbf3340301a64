"""``palyra fake-upstream``: run the OpenAI + Anthropic fake in the foreground until SIGINT/SIGTERM.

The stop signals get handlers of our own: a process started with SIGINT ignored (``make test &``,
``nohup``, some CI runners) inherits that disposition, and Python's default Ctrl-C handling would
then never stop it. Every fault and setting of :class:`palyra.testing.FakeUpstream` is a flag.
"""

from __future__ import annotations

import asyncio
import signal

import typer

from palyra.testing import FakeUpstream, Fault
from palyra.testing.fault_spec import FaultSpecError, describe_kinds, parse_fault_spec
from palyra.testing.settings import DEFAULT_ANTHROPIC_MODELS, DEFAULT_OPENAI_MODELS

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def serve_until_signalled(fake: FakeUpstream, announce: bool = True) -> signal.Signals:
    """Serve until SIGINT or SIGTERM arrives, whatever their inherited disposition; the signal."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def stop(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    try:
        async with fake:
            if announce:
                _announce(fake)
            return await received
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _announce(running: FakeUpstream) -> None:
    keys = running.settings.api_keys
    accepts = f"{len(keys)} configured key(s)" if keys else "any non-empty key"
    typer.echo(f"fake upstream listening on {running.base_url} (accepts {accepts})")
    pending = running.faults.pending()
    if pending:
        typer.echo(f"  {len(pending)} fault(s) queued for the next matching requests")
    typer.echo(f"  OpenAI:    base_url={running.openai_base_url}")
    typer.echo(f"  Anthropic: base_url={running.anthropic_base_url}")  # last: a reader waits for it


def _faults(specs: list[str]) -> list[Fault]:
    faults: list[Fault] = []
    for spec in specs:
        try:
            faults += parse_fault_spec(spec)
        except FaultSpecError as exc:
            raise typer.BadParameter(str(exc), param_hint="--fault") from None
    return faults


def command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8089, "--port", help="Port to listen on (0 picks a free one)."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Delay before every answer."),
    jitter_ms: float = typer.Option(0.0, "--jitter-ms", help="Extra random delay, 0..N ms."),
    fail_rate: float = typer.Option(0.0, "--fail-rate", help="Share of requests that fail (0..1)."),
    fail_status: int = typer.Option(500, "--fail-status", help="HTTP status of those failures."),
    rate_limit_rpm: int = typer.Option(0, "--rate-limit-rpm", help="429 above N requests/minute."),
    stream_chunk_tokens: int = typer.Option(1, "--stream-chunk-tokens", help="Words per chunk."),
    stream_chunk_delay_ms: float = typer.Option(
        0.0, "--stream-chunk-delay-ms", help="Pause between stream events."
    ),
    context_window: int = typer.Option(
        128_000,
        "--context-window",
        help="Prompts above this many tokens get the provider's context-length 400.",
    ),
    cached_tokens: int = typer.Option(
        0, "--cached-tokens", help="Prompt tokens reported as cached in every usage."
    ),
    reasoning_content: bool = typer.Option(
        False,
        "--reasoning-content",
        help="The OpenAI endpoint returns reasoning_content, as DeepSeek and vLLM do.",
    ),
    responses_future_item: bool = typer.Option(
        False,
        "--responses-future-item",
        help="/v1/responses adds an item kind, an event type and a Response field no client "
        "knows yet, as a newer API version would.",
    ),
    reasoning_field: str = typer.Option(
        "reasoning_content",
        "--reasoning-field",
        help="With --reasoning-content, the field reasoning comes in: reasoning_content "
        "(DeepSeek, vLLM), reasoning (OpenRouter), reasoning_details (OpenRouter, signed) or "
        "thinking_blocks (LiteLLM, signed).",
    ),
    answer_extras: bool = typer.Option(
        False,
        "--answer-extras",
        help="The OpenAI endpoint adds fields Palyra does not model, as Azure OpenAI does "
        "(prompt_filter_results, content_filter_results, obfuscation).",
    ),
    embedding_dimensions: int = typer.Option(
        1536, "--embedding-dimensions", help="Embedding size when the request names none."
    ),
    openai_model: list[str] = typer.Option(
        [],
        "--openai-model",
        help="Model listed by GET /v1/models (repeatable). Default: "
        + ", ".join(DEFAULT_OPENAI_MODELS),
    ),
    anthropic_model: list[str] = typer.Option(
        [],
        "--anthropic-model",
        help="Model listed by Anthropic's GET /v1/models (repeatable). Default: "
        + ", ".join(DEFAULT_ANTHROPIC_MODELS),
    ),
    api_key: list[str] = typer.Option(
        [], "--api-key", help="Accepted key (repeatable). Default: any non-empty key."
    ),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        metavar="KIND:KEY=VALUE,...",
        help="Queue a fault (repeatable, FIFO); each copy is consumed by one matching request. "
        f"KIND (keys it takes): {describe_kinds()}. Every kind also takes model=NAME and "
        "path=/v1/... (only matching requests consume it) and times=N (queue N copies). "
        "E.g. --fault stream_cut:after_chunks=3,times=2 --fault server_error:status=503",
    ),
) -> None:
    """Run a fake OpenAI + Anthropic upstream (no real model, no keys needed) until SIGINT or
    SIGTERM."""
    try:
        fake = FakeUpstream(
            host,
            port,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            fail_rate=fail_rate,
            fail_status=fail_status,
            rate_limit_rpm=rate_limit_rpm,
            stream_chunk_tokens=stream_chunk_tokens,
            stream_chunk_delay_ms=stream_chunk_delay_ms,
            context_window=context_window,
            cached_tokens=cached_tokens,
            reasoning_content=reasoning_content,
            responses_future_item=responses_future_item,
            reasoning_field=reasoning_field,
            answer_extras=answer_extras,
            default_embedding_dimensions=embedding_dimensions,
            openai_models=tuple(openai_model) or DEFAULT_OPENAI_MODELS,
            anthropic_models=tuple(anthropic_model) or DEFAULT_ANTHROPIC_MODELS,
            api_keys=frozenset(api_key),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    fake.faults.push(*_faults(fault))
    try:
        stopped_by = asyncio.run(serve_until_signalled(fake))
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port"
        ) from exc
    except KeyboardInterrupt:  # Ctrl-C before the handlers were installed
        stopped_by = signal.SIGINT
    typer.echo(f"fake upstream stopped ({stopped_by.name})")
