"""Running a Simulator's app: inside a loop, in a thread with its own loop, or forever."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING

from aiohttp import web

from csload.https_rule import is_loopback_host

if TYPE_CHECKING:
    from csload.simulator.core import Simulator

# Held or throttled handlers are cut after this long when the server stops.
SHUTDOWN_TIMEOUT = 1.0


def require_loopback(host: str) -> None:
    """The simulator has well-known credentials: it never listens beyond this machine."""
    if not is_loopback_host(host) or host == "localhost":
        raise ValueError(f"the simulator binds only to a loopback address such as 127.0.0.1, "
                         f"not {host!r}")


@asynccontextmanager
async def serve_app(sim: Simulator, host: str, port: int) -> AsyncIterator[str]:
    sim.gate.bind(asyncio.get_running_loop())
    runner = web.AppRunner(sim.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        sim.base_url = f"http://{url_host}:{bound}"
        yield sim.base_url
    finally:
        # Held requests must finish or the shutdown would wait on them.
        sim.gate.open()
        await runner.cleanup()
        sim.base_url = None


class ServerHandle:
    """A simulator served from its own thread; `stop()` (or leaving a with-block) ends it."""

    def __init__(self, base_url: str, loop: asyncio.AbstractEventLoop, stopping: asyncio.Event,
                 thread: threading.Thread) -> None:
        self.base_url = base_url
        self._loop = loop
        self._stopping = stopping
        self._thread = thread

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The serving loop (run coroutines on it with asyncio.run_coroutine_threadsafe)."""
        return self._loop

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_thread(sim: Simulator, host: str, port: int) -> ServerHandle:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    started: dict[str, object] = {}

    async def main() -> None:
        stopping = asyncio.Event()
        started["stopping"] = stopping
        try:
            async with serve_app(sim, host, port) as base_url:
                started["url"] = base_url
                ready.set()
                await stopping.wait()
        except Exception as exc:
            started["error"] = exc
            ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="csload-simulator", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("the simulator did not start within 60 seconds")
    error = started.get("error")
    if isinstance(error, Exception):
        raise error
    stopping = started["stopping"]
    assert isinstance(stopping, asyncio.Event)
    return ServerHandle(str(started["url"]), loop, stopping, thread)
