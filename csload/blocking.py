"""Running an async csload function from blocking code, even where an event loop already runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def run_blocking(runner: Callable[[], Awaitable[T]], *, thread_name: str) -> T:
    """`anyio.run(runner)`; inside a running loop (a notebook), in a thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(runner)
    result: list[T] = []
    failure: list[BaseException] = []

    def in_thread() -> None:
        try:
            result.append(anyio.run(runner))
        except BaseException as exc:  # handed back to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=in_thread, name=thread_name)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
