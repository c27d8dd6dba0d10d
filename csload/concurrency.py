"""Concurrency helpers shared by the stages.

    run_blocking   run an async csload function from blocking code, even where an event loop
                   already runs (a notebook)
    first_error    the error to report when a task group fails
"""

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


def first_error(error: BaseException) -> BaseException:
    """The error that failed a task group, out of its (nested) exception group.

    One task's failure cancels the others, so the group also holds their cancellations:
    report the first error that is not one.
    """
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if not isinstance(inner, anyio.get_cancelled_exc_class()):
                return first_error(inner)
    return error
