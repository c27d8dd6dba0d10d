"""`csload sync` stopped by an error after it committed a batch: the error, and what stays.

A lake sync commits each batch (one table's runs) on its own; a later batch can still fail (a
second writer's commit in between: LakeConflict; a full disk). The runs committed before it
are in the lake and stay, and the next sync loads exactly the rest. The error line alone (exit
1, "failed before loading anything" in the README until 2026-12-07) hid them: now a line after
it, and the JSON error object, name them; from Python, the error carries the report up to it
(`CsloadError.report`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import csload
from csload.cli.interrupt import CommittedRuns
from csload.config import Settings
from csload.errors import CsloadError, LakeConflict
from csload.lake.store import ParquetStore
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import Simulator
from tests.support.lakekit import compare_lake
from tests.support.syncref import LEGACY_JOB, VIEWS_JOB, successful_runs


class SecondBatchLoses:
    """From `arm()` on, at the next sync's second batch's ledger commit (its table's commit
    made), another sync opens the lake and commits first: real commits, so the sync's own
    fails with LakeConflict. Once per `arm()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: int | None = None
        apply, commit_ledger = ParquetStore.apply, ParquetStore._commit_ledger

        def counted(store: ParquetStore, runs: Any) -> Any:
            if self.batches is not None:
                self.batches += 1
            return apply(store, runs)

        def second_loses(store: ParquetStore, *args: Any) -> Any:
            if self.batches == 2:
                self.batches = None
                with ParquetStore.open(store.root) as other:
                    other._publish()
            return commit_ledger(store, *args)

        monkeypatch.setattr(ParquetStore, "apply", counted)
        monkeypatch.setattr(ParquetStore, "_commit_ledger", second_loses)

    def arm(self) -> None:
        self.batches = 0


def lake_loaded_runs(root: Path) -> set[int]:
    with ParquetStore.open(str(root)) as store:
        return store.loaded_runs()


def test_the_runs_committed_before_the_error_are_named_and_stay(
        simulator: Simulator, cli: Callable[..., Result], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "lake"
    conflict = SecondBatchLoses(monkeypatch)
    conflict.arm()
    first = cli("sync", "--parquet", str(root), "--json")
    assert first.exit_code == 1, first.output
    document = json.loads(first.stdout)
    assert document["error"]["kind"] == "LakeConflict", document
    assert "another process committed to the lake" in document["error"]["message"]
    committed = {r["runId"] for r in document["runs"]}
    assert committed and document["runsLoaded"] == len(committed)
    assert document["rows"] == sum(r["rows"] for r in document["runs"]) > 0
    # What the report says was committed is what the lake holds, row for row.
    assert lake_loaded_runs(root) == committed
    compare_lake(root, simulator, sorted(committed)).assert_exact()
    assert committed < set(successful_runs(simulator))   # the second batch did not count

    # The same on a terminal: the error line, then the runs that stay.
    root2 = tmp_path / "lake2"
    conflict.arm()
    text = cli("sync", "--parquet", str(root2))
    assert text.exit_code == 1, text.output
    lines = [line for line in text.stderr.splitlines() if line.strip()]
    error_at = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    after = " ".join(lines[error_at + 1:])
    runs = len(lake_loaded_runs(root2))
    assert after.startswith(f"before the error: {runs} run"), text.stderr
    assert "loaded and committed" in after and "loads exactly the rest" in after

    # The next sync loads exactly the rest.
    again = cli("sync", "--parquet", str(root), "--json")
    assert again.exit_code == 0, again.output
    loaded = {r["runId"] for r in json.loads(again.stdout)["runs"] if r["status"] == "loaded"}
    assert loaded.isdisjoint(committed)
    assert committed | loaded == set(successful_runs(simulator))
    compare_lake(root, simulator, sorted(committed | loaded)).assert_exact()


def test_the_library_error_carries_the_report_of_what_was_committed(
        simulator: Simulator, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "lake"
    conflict = SecondBatchLoses(monkeypatch)
    conflict.arm()
    with pytest.raises(LakeConflict) as raised:
        csload.sync(settings, parquet=root)
    report = raised.value.report
    assert report is not None
    committed = {r.run_id for r in report.loaded}
    assert committed and committed == lake_loaded_runs(root)
    assert report.rows == sum(r.rows for r in report.loaded) > 0
    compare_lake(root, simulator, sorted(committed)).assert_exact()
    assert committed < set(successful_runs(simulator))
    # An error before anything was committed carries none.
    with pytest.raises(CsloadError) as early:
        csload.sync(settings, parquet="/proc/csload-lake")
    assert early.value.report is None


def test_runs_a_batch_loaded_before_its_failed_runs_could_be_recorded_are_reported(
        simulator: Simulator, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch's loaded runs commit first, then its failed or expired runs are recorded in a
    # commit of their own. When that one fails (here a real second writer commits in between:
    # LakeConflict), the loaded runs are in the lake and stay: the error's report names them.
    views = sorted(r for r in successful_runs(simulator)
                   if simulator.run(r).job_id == VIEWS_JOB)
    failing = views[-1]
    faults = simulator.faults
    faults.storage_fault_part, faults.storage_fault_part_kind = (failing, 1), "slowdown"
    faults.storage_fault_part_next = 2   # both attempts: the run fails
    record_unloaded = ParquetStore.record_unloaded

    def another_writer_first(store: ParquetStore, runs: Any) -> Any:
        if any(run.run.run_id == failing for run in runs):
            with ParquetStore.open(store.root) as other:
                other._publish()
        return record_unloaded(store, runs)

    monkeypatch.setattr(ParquetStore, "record_unloaded", another_writer_first)
    root = tmp_path / "lake"
    two_attempts = dataclasses.replace(
        settings, retry=dataclasses.replace(settings.retry, max_attempts=2))

    with pytest.raises(LakeConflict) as raised:
        csload.sync(two_attempts, parquet=root)

    report = raised.value.report
    assert report is not None
    committed = {r.run_id for r in report.loaded}
    assert set(views[:-1]) <= committed   # the batch's loaded runs, before its failed one
    assert failing not in committed
    assert committed == lake_loaded_runs(root)
    compare_lake(root, simulator, sorted(committed)).assert_exact()


def test_an_error_before_anything_is_committed_says_nothing_more(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    failed = cli("sync", "--parquet", "/proc/csload-lake", "--json")
    assert failed.exit_code == 1, failed.output
    assert set(json.loads(failed.stdout)) == {"error"}
    assert "before the error" not in failed.stderr


def test_runs_that_failed_at_contentsquare_count_among_the_runs_recorded(
        simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    # They are written to the ledger (committed) at the start of a sync, before any batch: a
    # later error or a Ctrl-C leaves them recorded, so the summary counts them. Until
    # 2026-12-07 their events were plain MESSAGE events, and "N failed or expired runs
    # recorded" left them out.
    source_failed = sorted(r.run_id for r in simulator.runs(LEGACY_JOB)
                           if simulator.run_state(r.run_id) == "FAILURE")
    assert source_failed
    committed = CommittedRuns()
    events: list[SyncEvent] = []

    def on_event(event: SyncEvent) -> None:
        committed(event)
        events.append(event)

    report = csload.sync(settings, parquet=tmp_path / "lake", on_event=on_event)

    assert sorted(e.run_id or 0 for e in events
                  if e.kind is EventKind.RUN_SOURCE_FAILED) == source_failed
    assert [r.run_id for r in report.source_failed] == source_failed
    recorded = len(report.failed) + len(report.expired) + len(source_failed)
    assert committed.recorded == recorded
    line = committed.after_error("csload sync") or ""
    plural = "s" if recorded > 1 else ""
    assert f", {recorded} failed or expired run{plural} recorded;" in line, line
