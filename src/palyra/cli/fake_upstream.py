"""``palyra fake-upstream``: run the OpenAI + Anthropic fake in the foreground until Ctrl-C."""

from __future__ import annotations

import asyncio

import typer

from palyra.testing import FakeUpstream


def command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8089, "--port", help="Port to listen on (0 picks a free one)."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Delay before every answer."),
    jitter_ms: float = typer.Option(0.0, "--jitter-ms", help="Extra random delay, 0..N ms."),
    fail_rate: float = typer.Option(0.0, "--fail-rate", help="Share of requests that fail (0..1)."),
    fail_status: int = typer.Option(500, "--fail-status", help="HTTP status of those failures."),
    rate_limit_rpm: int = typer.Option(0, "--rate-limit-rpm", help="429 above N requests/minute."),
    stream_chunk_tokens: int = typer.Option(1, "--stream-chunk-tokens", help="Words per chunk."),
    api_key: list[str] = typer.Option(
        [], "--api-key", help="Accepted key (repeatable). Default: any non-empty key."
    ),
) -> None:
    """Run a fake OpenAI + Anthropic upstream (no real model, no keys needed)."""
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
            api_keys=frozenset(api_key),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc

    def ready(running: FakeUpstream) -> None:
        keys = f"{len(api_key)} configured key(s)" if api_key else "any non-empty key"
        typer.echo(f"fake upstream listening on {running.base_url} (accepts {keys})")
        typer.echo(f"  OpenAI:    base_url={running.openai_base_url}")
        typer.echo(f"  Anthropic: base_url={running.anthropic_base_url}")

    try:
        asyncio.run(fake.serve_forever(ready))
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port"
        ) from exc
    except KeyboardInterrupt:
        typer.echo("fake upstream stopped")
