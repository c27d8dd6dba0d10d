"""Fixtures of the sync tests: the simulator served from a thread, settings, a CLI runner.

    sim_config   smaller than the shared one (80 sessions a day): a sync takes well under 1 s.
    dialect_config  the same in each dialect (contract, clickhouse: contract section 9); a
                 module runs its tests in both by defining `sim_config` to return it.
    settings     Settings reaching `sim_thread`, with fast retries (the simulator's Retry-After
                 is capped at 0.02 s, backoff at 0.05 s) so fault tests do not wait.
    sim_env      the CONTENTSQUARE_* variables for a `csload` subprocess or CliRunner.
    cli          runs `csload ...` in-process with click's CliRunner, in a folder with no
                 csload.toml; returns click's Result.
    db_path      a database path in the test's folder (not created).

The simulator is served from a thread so that both `csload.sync()` (which blocks) and
subprocesses can reach it; its clock stays frozen unless a test moves it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from csload.cli import main
from csload.config import RetryPolicy, Settings
from csload.simulator import ServerHandle, SimConfig, Simulator
from csload.simulator.config import DIALECTS, dialect_variants
from tests.support.simenv import sim_settings, sim_variables
from tests.support.syncref import SIM_START

FAST_RETRY = RetryPolicy(max_attempts=10, base_delay=0.01, max_delay=0.05,
                         max_retry_after=0.02)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7, days=3, sessions_per_day=80, start_time=SIM_START)


@pytest.fixture(params=DIALECTS)
def dialect_config(request: pytest.FixtureRequest) -> SimConfig:
    return SimConfig(seed=7, days=3, sessions_per_day=80, start_time=SIM_START,
                     variants=dialect_variants(request.param))


@pytest.fixture
def settings(simulator: Simulator, sim_thread: ServerHandle) -> Settings:
    return sim_settings(simulator, sim_thread.base_url, retry=FAST_RETRY)


@pytest.fixture
def sim_env(simulator: Simulator, sim_thread: ServerHandle) -> dict[str, str]:
    return sim_variables(simulator, sim_thread.base_url)


@pytest.fixture
def child_env(sim_env: dict[str, str]) -> dict[str, str]:
    """The environment of a csload subprocess: ours, with the simulator's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTSQUARE_")}
    env.update(sim_env)
    return env


@pytest.fixture
def cli(sim_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., Result]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CONTENTSQUARE_"):
            monkeypatch.delenv(name)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=sim_env, catch_exceptions=False)

    return run


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cs.duckdb"
