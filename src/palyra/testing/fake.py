"""``FakeUpstream``: a real loopback HTTP server speaking OpenAI and Anthropic, for tests,
benchmarks and trying Palyra without keys. Runs in a background thread (``with``) or in the
current event loop (``async with``)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from palyra.testing.conversation import ScriptedToolCall
from palyra.testing.dispatch import FakeApp
from palyra.testing.faults import FaultQueue
from palyra.testing.http_server import HttpServer
from palyra.testing.recording import RecordedRequest
from palyra.testing.settings import FakeSettings

_SETTING_NAMES = tuple(f.name for f in dataclasses.fields(FakeSettings))


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class FakeUpstream:
    """See the package docstring. Keyword arguments are :class:`FakeSettings` fields."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        **settings: Any,
    ) -> None:
        unknown = sorted(set(settings) - set(_SETTING_NAMES))
        if unknown:
            raise TypeError(
                f"FakeUpstream: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(n for n in _SETTING_NAMES)}"
            )
        self.host = host
        self.port = port
        self.settings = FakeSettings(**settings)
        self._app = FakeApp(self.settings, clock=clock, rng=rng or random.Random(0))
        self._server = HttpServer(self._app.handle)
        self._running = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        state = self.base_url if self._running else "stopped"
        return f"FakeUpstream({state}, {self.settings!r})"

    # --- what tests use ---
    @property
    def base_url(self) -> str:
        if not self._running:
            raise RuntimeError("FakeUpstream is not running; use it as `with FakeUpstream() as f:`")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def faults(self) -> FaultQueue:
        return self._app.faults

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        return self._app.log.snapshot()

    def clear(self) -> None:
        """Forget recorded requests, queued faults, scripted tool calls and the rate-limit window."""
        self._app.clear()

    def script_tool_calls(
        self, *calls: ScriptedToolCall | tuple[str, Mapping[str, Any] | str]
    ) -> None:
        """Make the next chat request that offers tools answer with exactly these calls.

        Each call queues one answer; call this again to script the answer after that.
        """
        if not calls:
            raise ValueError("script_tool_calls needs at least one call, e.g. ('get_weather', {})")
        self._app.script(
            [c if isinstance(c, ScriptedToolCall) else ScriptedToolCall(*c) for c in calls]
        )

    # --- in the current event loop ---
    async def astart(self) -> FakeUpstream:
        self.port = await self._server.start(self.host, self.port)
        self._running = True
        return self

    async def astop(self) -> None:
        self._running = False
        await self._server.stop()

    async def __aenter__(self) -> FakeUpstream:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    async def serve_forever(self, on_ready: Callable[[FakeUpstream], None] | None = None) -> None:
        """Serve until cancelled (the CLI's foreground mode)."""
        await self.astart()
        try:
            if on_ready is not None:
                on_ready(self)
            await asyncio.Event().wait()
        finally:
            await self.astop()

    # --- in a background thread ---
    def start(self) -> FakeUpstream:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = _new_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(self.astop())
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="palyra-fake-upstream", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
