"""Run by a test in a subprocess: `csload.sync` called as a notebook cell calls it, inside a
running event loop whose SIGINT is Python's default (as ipykernel's), interrupted by SIGINT
once its first run is loaded.

    python -m tests.support.notebook_child DB

(the simulator's settings in the environment; tests.support.children.child_environ). Prints
one JSON line: whether the call raised KeyboardInterrupt, and the csload threads still alive
right after.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading

import csload
from csload.pipeline.report import EventKind, SyncEvent


def main(db: str) -> None:
    settings = csload.load_settings()
    sent: list[int] = []

    def on_event(event: SyncEvent) -> None:
        if event.kind is EventKind.RUN_LOADED and not sent:
            sent.append(event.run_id or 0)
            os.kill(os.getpid(), signal.SIGINT)   # the notebook's interrupt button

    async def cell() -> None:
        csload.sync(settings, db=db, on_event=on_event)

    loop = asyncio.new_event_loop()   # no asyncio.run: its SIGINT handler is not a kernel's
    interrupted = False
    try:
        loop.run_until_complete(cell())
    except KeyboardInterrupt:
        interrupted = True
    alive = [t.name for t in threading.enumerate() if t.name.startswith("csload")]
    print(json.dumps({"interrupted": interrupted, "alive": alive}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
