"""Fixtures of the reliability suite: a seeded world with many small parts, fast retries, and
the summary that docs/reliability.md is rendered from.

    slow          True with `pytest --slow` or CSLOAD_SLOW=1: bigger world, more cells, more
                  crash points, more generated examples.
    sim_config    3 days (7 when slow) of daily runs of both scopes, parts of at most 16 KiB
                  (so a run has 3-12 parts and faults hit mid-run), a client secret that is
                  easy to spot in any text.
    simulator     (tests/conftest.py) with request recording on and every token and URL
                  signature it hands out remembered (`relkit.Secrets`).
    secrets       those secrets, for the scans.
    settings      reaching the simulator (served from a thread), RETRY budget, LIMITS.
    db_path       a database path in the test's folder.
    child_env     the environment of a `csload` subprocess reaching the simulator.
    target        a targets.SyncTarget in the test's folder, of the kind the test's
                  `target_kind` parameter names ("duckdb" or "parquet": a suite parametrized
                  by it runs each case into a DuckDB file and into a local lake of Delta tables).
    record        appends one line to the suite's summary (see relkit.Summary).

A test marked `@pytest.mark.slow_only` runs with --slow (or CSLOAD_SLOW=1) only; otherwise it is
deselected (not skipped), so the default run lists nothing for it.

With CSLOAD_RELIABILITY_SUMMARY=<file>, the suite writes what it ran (faults, crash points,
bad inputs, scans, rows lost and duplicated) to that JSON file at the end of the session;
`python -m tests.reliability.render_results <file>` turns it into docs/reliability.md
(tests/reliability/render_hostile.py writes its hostile-input section).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from csload.config import Settings
from csload.simulator import ServerHandle, SimConfig, Simulator
from tests.support.relkit import LIMITS, RETRY, Secrets, Summary, is_slow, world
from tests.support.simenv import sim_child_env, sim_settings
from tests.support.targets import SyncTarget

_summary = Summary()
_outcomes: dict[str, str] = {}


@pytest.fixture(scope="session")
def slow(request: pytest.FixtureRequest) -> bool:
    return is_slow(request.config)


@pytest.fixture
def sim_config(slow: bool) -> SimConfig:
    return world(slow)


@pytest.fixture
def secrets(simulator: Simulator, summary: Summary, request: pytest.FixtureRequest
            ) -> Iterator[Secrets]:
    found = Secrets.watch(simulator)
    yield found
    summary.add(request.node.nodeid, "scan", request.node.name,
                texts=found.texts_scanned, storage_requests=found.storage_requests_checked,
                tokens=len(found.tokens), signatures=len(found.signatures))


@pytest.fixture
def settings(simulator: Simulator, sim_thread: ServerHandle, secrets: Secrets) -> Settings:
    return sim_settings(simulator, sim_thread.base_url, retry=RETRY, limits=LIMITS)


@pytest.fixture
def child_env(simulator: Simulator, sim_thread: ServerHandle) -> dict[str, str]:
    return sim_child_env(simulator, sim_thread.base_url)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cs.duckdb"


@pytest.fixture
def target(target_kind: str, tmp_path: Path) -> SyncTarget:
    return SyncTarget(target_kind, tmp_path)


@pytest.fixture(scope="session")
def summary(slow: bool) -> Iterator[Summary]:
    _summary.mode = "slow" if slow else "default"
    yield _summary
    target = os.environ.get("CSLOAD_RELIABILITY_SUMMARY")
    if target:
        _summary.write(Path(target), _outcomes)


@pytest.fixture
def record(summary: Summary, request: pytest.FixtureRequest) -> Callable[..., None]:
    def add(area: str, case: str, **fields: Any) -> None:
        summary.add(request.node.nodeid, area, case, **fields)

    return add


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow_only: run with --slow (or CSLOAD_SLOW=1) only")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_slow(config):
        return
    dropped = [item for item in items if item.get_closest_marker("slow_only") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.get_closest_marker("slow_only") is None]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[item.nodeid] = report.outcome
    return report


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 6 MiB tmpfs (root may mount one), or None where mount is refused (CI runs tests as
    an ordinary user) or CSLOAD_TEST_NO_MOUNT=1: the tests then simulate ENOSPC instead."""
    folder = tmp_path / "small"
    folder.mkdir()
    mount = shutil.which("mount")
    done = mount is not None and not os.environ.get("CSLOAD_TEST_NO_MOUNT") and subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)],
        capture_output=True, check=False).returncode == 0
    try:
        yield folder if done else None
    finally:
        if done:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
