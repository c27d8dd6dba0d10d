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

The S3 lake's server is tests/conftest.py's `s3_server`, shared with tests/lake.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from csload.config import RetryPolicy, Settings
from csload.simulator import ServerHandle, SimConfig, Simulator
from tests.support.bfclock import SIM_START, SimDriver
from tests.support.bfref import VIEWS_ELSEWHERE
from tests.support.simenv import sim_settings

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=0.02)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=11, days=3, sessions_per_day=25, start_time=SIM_START)


@pytest.fixture
def settings(simulator: Simulator, sim_url: str) -> Settings:
    assert simulator.job_named("Daily pageviews").job_id in VIEWS_ELSEWHERE
    return sim_settings(simulator, sim_url, retry=FAST_RETRY, tables=VIEWS_ELSEWHERE)


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
