"""Fixtures of the backfill tests: the simulator with its clock driven by the backfill's waits.

    sim_config   a small world (25 sessions a day), clock frozen at SIM_START (2026-11-25 12:00
                 UTC) unless something moves it.
    settings     Settings reaching the simulator served in the test's loop (`sim_url`).
    driver       the injected `sleep` and `clock` of a backfill: each wait moves the simulator's
                 clock forward by the seconds asked (after running the test's hooks), so once
                 jobs progress without any real waiting.
    db_path      a database path in the test's folder (not created).
    live_sim     for CLI tests: a simulator on real time (the CLI reads the real clock), with
                 once runs that take 3 x 0.02 s, served from a thread.
    s3_server    (module) the lake tests' moto S3 server on 127.0.0.1 (tests/lake/lakeutil.py),
                 with a bucket `lake`; `S3Server.options` are the lake's storage options.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from csload.config import RetryPolicy, Settings
from csload.simulator import ServerHandle, SimConfig, Simulator

sys.path.insert(0, str(Path(__file__).parent))
# The lake tests' helpers (the moto S3 server); appended, so that `conftest` stays this one.
sys.path.append(str(Path(__file__).parent.parent / "lake"))

from lakeutil import S3Server, start_s3_server

SIM_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=0.02)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=11, days=3, sessions_per_day=25, start_time=SIM_START)


@pytest.fixture
def settings(simulator: Simulator, sim_url: str) -> Settings:
    client_id, client_secret, project_id = simulator.credentials
    return Settings(client_id=client_id, client_secret=client_secret, project_id=project_id,
                    auth_url=sim_url, retry=FAST_RETRY)


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


@pytest.fixture
def driver(simulator: Simulator) -> SimDriver:
    return SimDriver(simulator)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cs.duckdb"


@pytest.fixture
def live_sim() -> Iterator[tuple[Simulator, ServerHandle]]:
    sim = Simulator(SimConfig(seed=5, days=2, sessions_per_day=10, start_time=None,
                              real_time_clock=True, once_state_seconds=0.02))
    handle = sim.start_in_thread()
    try:
        yield sim, handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """The lake tests' moto server, for one module, left behind as moto was found.

    moto keeps its state (users, buckets, "authentication is on") in the process, not in the
    server: tests/lake starts its own session server later in the same run (directories run in
    order) and must find moto fresh. So the state is reset and authentication turned off again
    before this server stops. (A single session fixture in tests/conftest.py would be simpler.)
    """
    server = start_s3_server()
    try:
        yield server
    finally:
        for path, body in (("reset", b""), ("reset-auth", b"inf")):
            urllib.request.urlopen(urllib.request.Request(  # noqa: S310 (a loopback http URL)
                f"{server.endpoint}/moto-api/{path}", data=body, method="POST",
                headers={"Content-Type": "text/plain"}), timeout=30).read()
        server.stop()
