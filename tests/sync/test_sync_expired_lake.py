"""A first sync into a lake that meets many expired runs (a customer with weeks or a year of
daily jobs: storage keeps files 7 days) records them with one ledger commit per writer batch,
not one per run. Each lake commit rewrites the ledger table's file: one per run made a year of
two daily jobs (716 expired runs) take 41 s, one per batch 8-10 s (benchmarks/bench_history.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from deltalake import DeltaTable

import csload
from csload.config import Settings
from csload.lake.layout import LEDGER_TABLE_DIR
from csload.pipeline.report import EventKind, RunStatus, SyncEvent
from csload.simulator import SimConfig, Simulator
from tests.support.syncref import (
    SIM_START,
    expected_tables,
    expired_runs,
    lake_rows,
    successful_runs,
)

UNLOADED = (EventKind.RUN_EXPIRED, EventKind.RUN_FAILED)


@pytest.fixture
def sim_config() -> SimConfig:
    # 30 days: the first 23 days' runs of each daily job have expired.
    return SimConfig(seed=11, days=30, sessions_per_day=4, start_time=SIM_START)


def commits_per_batch(events: list[SyncEvent]) -> int:
    """The ledger commits the writer's batches may make: one for a batch's loaded runs, one
    for its failed and expired ones (a LOADING event opens each batch, its RUN_* events
    follow)."""
    batches: list[set[EventKind]] = []
    for event in events:
        if event.kind is EventKind.LOADING:
            batches.append(set())
        elif event.kind in (EventKind.RUN_LOADED, *UNLOADED):
            batches[-1].add(event.kind)
    return sum((EventKind.RUN_LOADED in b) + any(k in b for k in UNLOADED) for b in batches)


def test_expired_runs_take_one_ledger_commit_per_batch(
        simulator: Simulator, settings: Settings, cli: Callable[..., Result],
        tmp_path: Path) -> None:
    expired = set(expired_runs(simulator))
    assert len(expired) >= 40
    root = tmp_path / "lake"
    events: list[SyncEvent] = []

    report = csload.sync(settings, parquet=str(root), on_event=events.append)

    assert {r.run_id for r in report.runs if r.status is RunStatus.EXPIRED} == expired
    loaded = [r.run_id for r in report.runs if r.status is RunStatus.LOADED]
    assert set(loaded) == set(successful_runs(simulator)) - expired
    for table, (_, rows) in expected_tables(simulator, loaded).items():
        assert len(lake_rows(root, table)[1]) == len(rows), table
    ledger = DeltaTable(str(root / LEDGER_TABLE_DIR))
    commits = ledger.version() + 1   # version 0 is the sync's first commit
    # ... and one before the downloads for the runs that FAILED at Contentsquare.
    bound = commits_per_batch(events) + (1 if report.source_failed else 0)
    assert commits <= bound < len(expired), (commits, bound, len(expired))

    # Every expired run is in the ledger: status lists them, the next sync fetches nothing.
    status = json.loads(cli("status", "--parquet", str(root), "--json").stdout)
    assert {r["runId"] for r in status["expiredRuns"]} == expired
    storage = simulator.stats.storage_requests
    again = csload.sync(settings, parquet=str(root))
    assert again.runs == [] and simulator.stats.storage_requests == storage
