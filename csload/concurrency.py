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
    """`anyio.run(runner)`; inside a running loop (a notebook), in a thread with its own loop.

    A KeyboardInterrupt while the thread runs (a notebook's interrupt) cancels the runner
    the way the CLI's Ctrl-C does (a sync commits or rolls back the load in progress and
    removes its downloads), waits for it to wind down, and is raised. It used to end the
    wait only: the sync went on in the background, and a cell run again met it (2026-12-07).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(runner)
    result: list[T] = []
    failure: list[BaseException] = []
    running: list[tuple[asyncio.AbstractEventLoop, anyio.CancelScope]] = []
    stopping = threading.Event()

    async def cancellable() -> None:
        with anyio.CancelScope() as scope:
            running.append((asyncio.get_running_loop(), scope))
            if stopping.is_set():   # interrupted before the runner started
                scope.cancel()
            result.append(await runner())

    finished = threading.Event()

    def in_thread() -> None:
        try:
            anyio.run(cancellable)
        except BaseException as exc:  # handed back to the caller's thread below
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=in_thread, name=thread_name)
    thread.start()
    # An event, not Thread.join: a join that a KeyboardInterrupt broke marks the thread as
    # ended on Python 3.11 (the next join returns at once, the thread still running).
    try:
        finished.wait()
    except KeyboardInterrupt:
        stopping.set()
        for loop, scope in running:
            loop.call_soon_threadsafe(scope.cancel)
        finished.wait()
        thread.join()
        raise
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
