"""The backfill tests' simulated time: where the simulator's clock starts, and the `sleep` and
`clock` a backfill gets so that its waits move that clock instead of passing real time.

A module of its own, not tests/backfill/conftest.py: a test module that imported `conftest` by
name got tests/lake's conftest instead whenever both folders ran in one pytest command.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import anyio

from csload.simulator import Simulator

SIM_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class SimDriver:
    """`sleep` for a backfill: run the hooks, then move the simulator's clock forward."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.hooks: list[Callable[[Simulator], None]] = []
        self.waits = 0

    async def sleep(self, seconds: float) -> None:
        self.waits += 1
        for hook in self.hooks:
            hook(self.sim)
        self.sim.advance(seconds)
        await anyio.sleep(0)

    def clock(self) -> datetime:
        return self.sim.clock.now()
