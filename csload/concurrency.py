"""Concurrency helpers shared by the stages.

    run_blocking   run an async csload function from blocking code, even where an event loop
                   already runs (a notebook)
    first_error    the error to report when a task group fails
    one_at_a_time  an object whose methods run one call at a time, whichever thread calls
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


def run_blocking(runner: Callable[[], Awaitable[T]], *, thread_name: str) -> T:
    """`runner()` run to its end from blocking code, in a thread with its own event loop.

    A thread also where no loop runs in the caller's (a script): the caller's own signal
    handlers run in its thread, and one that raised there (a SIGTERM handler calling
    sys.exit, a signal.alarm timeout, Airflow's) tore the sync's event loop down in the middle
    of its work: its store closed under the writer's statement and the database stayed locked
    for the rest of the process, or the process never exited (anyio's worker threads left).

    Anything raised in the caller's thread while the runner runs (Ctrl-C's KeyboardInterrupt,
    a notebook's interrupt, such a handler's exception) cancels the runner the way the CLI's
    Ctrl-C does (a sync commits or rolls back the load in progress and removes its
    downloads), waits for it to wind down, and is raised. It used to end the wait only: the
    sync went on in the background, and a cell run again met it (2026-12-07).
    """
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
    except BaseException:
        stopping.set()
        for loop, scope in running:
            with contextlib.suppress(RuntimeError):   # its loop closed: the runner has ended
                loop.call_soon_threadsafe(scope.cancel)
        _wait_uninterrupted(finished)
        thread.join()
        raise
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _wait_uninterrupted(finished: threading.Event) -> None:
    """Wait for `finished`; a second exception from the caller's signal handlers (a second
    Ctrl-C) does not cut the runner's wind-down short: it waits on."""
    while True:
        try:
            finished.wait()
            return
        except BaseException:   # noqa: S112 - the first one is raised once the runner ends
            continue


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


class _OneAtATime:
    def __init__(self, target: object) -> None:
        self._target = target
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)
        return call


def one_at_a_time(target: T) -> T:
    """`target`, its methods run one call at a time: a call waits for the one in progress in
    another thread.

    For a sync's store: an exception that a signal handler raised in the event loop's thread
    (a library user's SIGTERM handler calling sys.exit, a signal.alarm timeout, Airflow's)
    cancelled the sync while its writer thread was inside a statement; the sync's close then
    failed ("connection is busy with another call") and the database stayed open, and locked,
    for the rest of the process. Its close now waits for the write to commit or roll back."""
    return _OneAtATime(target)  # type: ignore[return-value]
