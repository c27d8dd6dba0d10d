"""An asyncio event loop on virtual time, for tests of code that waits (anyio.sleep, timeouts).

When the loop has nothing ready to run, its clock jumps straight to the next timer instead of
sleeping, so a test that waits "0.3 s" takes no real time and sees exactly the times it
scheduled, however loaded the machine is (a test of a timing rule asserts on these times, not
on the wall clock). Only timers advance the clock: a loop that waits on real I/O or a thread
with no timer pending blocks as usual.

    result = run_on_virtual_time(some_coroutine_function, arg)

`clock_jumps()`, called on such a loop, tells when it woke for a timer: a test that counts the
wake-ups of a waiter (no polling: it wakes only when something it waits for happens) reads it.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        # The times the clock jumped to: each time the loop slept until a timer was due.
        self.jumps: list[float] = []


class _JumpingSelector(selectors.DefaultSelector):
    """Polls for I/O without waiting; a wait of `timeout` seconds moves the clock instead."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:   # no timer pending: only I/O can wake the loop
            return super().select(None)
        ready = super().select(0)
        if not ready and timeout > 0:
            self._clock.now += timeout
            self._clock.jumps.append(self._clock.now)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _Clock()
        super().__init__(selector=_JumpingSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now


def clock_jumps() -> list[float]:
    """The times the running VirtualTimeLoop's clock jumped to so far, in order: the moments
    at which the loop, with nothing to run, woke for its next timer."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop), "clock_jumps() needs run_on_virtual_time"
    return list(loop._virtual.jumps)


def run_on_virtual_time(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`func(*args)` run to completion on a fresh VirtualTimeLoop (time starts at 0)."""
    async def main() -> T:
        return await func(*args)

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())
