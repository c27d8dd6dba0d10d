"""`csload simulate`'s engine: serve a simulator until interrupted."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable

from csload.simulator.config import SimConfig
from csload.simulator.core import Simulator

_STOP_POLL = 0.2


def run_forever(host: str, port: int, config: SimConfig, on_ready: Callable[[str], None],
                *, stop: threading.Event | None = None) -> None:
    """Serve a simulator built from `config` until KeyboardInterrupt (or `stop` is set).

    Blocking. `on_ready` gets the base URL (also the auth URL) once the port is open. The clock
    follows real time here, so tokens and URLs expire, `once` jobs progress and new daily
    runs appear as time passes.
    """
    sim = Simulator(dataclasses.replace(config, real_time_clock=True))

    async def main() -> None:
        async with sim.serve(host, port) as base_url:
            on_ready(base_url)
            if stop is None:
                await asyncio.Event().wait()
            else:
                # A thread-side Event: polling keeps Ctrl-C working and needs no extra thread.
                while not stop.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(_STOP_POLL)

    asyncio.run(main())
