"""Shared fixtures: a small seeded simulator, served in the test's loop or from a thread.

    sim_config   the SimConfig `simulator` is built from (override this fixture in a module
                 to change the world): seed 7, 3 days of daily runs, 120 sessions a day, the
                 clock frozen at SIM_START (2026-11-25 12:00 UTC), so runs, ids and bytes are
                 the same on every machine.
    simulator    a Simulator(sim_config). Change its `faults`, `variants`, `config`, `clock`
                 freely: each test gets its own.
    sim_url      (async) serves `simulator` on 127.0.0.1 (any free port) in the test's event
                 loop and yields the base URL, which is also the auth URL.
    sim_thread   (sync) serves `simulator` from a thread with its own loop; yields the
                 ServerHandle (`.base_url`), stopped after the test.
    s3_server    (session) moto's S3 server on 127.0.0.1 (tests/support/s3server.py) with a
                 bucket `lake` and valid credentials (`S3Server.options`), so wrong credentials and
                 missing buckets are refused as real S3 would; one for every test folder.

The helpers every suite shares are the package tests/support (imported as
`from tests.support.<module> import ...`): oracles, part writers, crash children and harness,
simulator and S3 helpers, the virtual clock. `tests.support.exportfmt` decodes the export files
independently of csload.
`--slow` (or CSLOAD_SLOW=1) selects the long version of the suites that have one.
The suite runs on every core (pytest-xdist: `-n auto` in pyproject's addopts); `-n 0` runs it in
this process, as a debugger or `-s` wants.

    @pytest.mark.hostile(finding, contained)
                 marks a test that plays one hostile input of issue 16 (a crafted lake file,
                 a hostile server, bad data, another user of the host) and shows it contained.
                 With CSLOAD_HOSTILE_SUMMARY=<file>, the run writes each marked test's finding,
                 what csload does and its outcome to that JSON file;
                 `python -m tests.reliability.render_hostile <file>` (see there) turns it into
                 the "hostile input" table of docs/reliability.md and the README's row.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from csload.simulator import ServerHandle, SimConfig, Simulator

if TYPE_CHECKING:
    from tests.support.s3server import S3Server


SIM_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# The summaries that docs/reliability.md is rendered from are each one JSON file written at the
# end of the session by the process that ran the tests: one process, not one per worker.
_ONE_PROCESS_SUMMARIES = ("CSLOAD_HOSTILE_SUMMARY", "CSLOAD_RELIABILITY_SUMMARY")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist starts its workers with COLUMNS=80 and LINES=24. csload's consoles take
    # COLUMNS as the user's chosen width (csload.cli.common, made when it is first imported,
    # which is after this), so the tests of piped output would see tables cut to 80 columns.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/reliability/conftest.py: only the top conftest may add options that
    # `pytest --slow` accepts from the repository root.
    parser.addoption("--slow", action="store_true", default=False,
                     help="run the long version of suites that have one (tests/reliability); "
                          "the environment variable CSLOAD_SLOW=1 does the same")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    # `-n auto` (pyproject's addopts) is one worker per core, but a run writing a summary runs
    # in this process alone.
    if any(os.environ.get(name) for name in _ONE_PROCESS_SUMMARIES):
        return 0
    return None


def pytest_configure(config: pytest.Config) -> None:
    written = [name for name in _ONE_PROCESS_SUMMARIES if os.environ.get(name)]
    if written and config.getoption("numprocesses", default=None):
        raise pytest.UsageError(f"{written[0]} is written by one process: run with -n 0 "
                                "(or -n auto, which does that)")
    config.addinivalue_line(
        "markers", "hostile(finding, contained): a hostile input of issue 16 and what csload "
                   "does with it, for docs/reliability.md's hostile input table")


_hostile_outcomes: dict[str, dict[str, str]] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("hostile")
    if marker is not None and (report.when == "call" or report.outcome != "passed"):
        finding, contained = marker.args
        entry = _hostile_outcomes.setdefault(item.nodeid, {
            "test": item.nodeid, "finding": finding, "contained": contained,
            "outcome": report.outcome})
        if report.outcome != "passed":
            entry["outcome"] = report.outcome   # a failed teardown fails the test too
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("CSLOAD_HOSTILE_SUMMARY")
    if target and _hostile_outcomes:
        Path(target).write_text(json.dumps(
            {"written": datetime.now(UTC).isoformat(timespec="seconds"),
             "entries": list(_hostile_outcomes.values())}, indent=1) + "\n")


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7, days=3, sessions_per_day=120, start_time=SIM_START)


@pytest.fixture
def simulator(sim_config: SimConfig) -> Simulator:
    return Simulator(sim_config)


@pytest.fixture
async def sim_url(simulator: Simulator) -> AsyncIterator[str]:
    async with simulator.serve() as base_url:
        yield base_url


@pytest.fixture
def sim_thread(simulator: Simulator) -> Iterator[ServerHandle]:
    handle = simulator.start_in_thread()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    # Imported here: moto and boto3 load only in a run that has S3 lake tests.
    from tests.support.s3server import start_s3_server

    server = start_s3_server()
    try:
        yield server
    finally:
        server.stop()
