"""SyncReport: `loaded`, `failed`, `expired`, `source_failed`, the totals, `exit_code` and the
JSON agree on every path, since they all read each run's last outcome (`final`).

The paths through a real sync (a damaged part downloaded again, a part that does not parse,
expired files, a run that failed at Contentsquare) are in tests/sync/test_status_honest.py.
"""

from __future__ import annotations

import pytest

from csload.pipeline.report import EXIT_OK, EXIT_SOME_RUNS_FAILED, RunOutcome, RunStatus, SyncReport


def outcome(run_id: int, status: RunStatus, rows: int = 0, nbytes: int = 0) -> RunOutcome:
    return RunOutcome(job_id=1, run_id=run_id, table="views", status=status, rows=rows,
                      bytes=nbytes, message=None if status is RunStatus.LOADED else "why")


def report_of(*outcomes: RunOutcome, dry_run: bool = False) -> SyncReport:
    return SyncReport(target="t.duckdb", dry_run=dry_run, runs=list(outcomes))


def assert_consistent(report: SyncReport) -> None:
    """The properties, the exit code and the JSON say the same thing."""
    data = report.to_json()
    statuses = [run["status"] for run in data["runs"]]
    assert len(statuses) == len({run["runId"] for run in data["runs"]})
    assert data["runsLoaded"] == statuses.count("loaded") == len(report.loaded)
    assert data["runsFailed"] == statuses.count("failed") == len(report.failed)
    assert data["runsExpired"] == statuses.count("expired") == len(report.expired)
    assert data["runsSourceFailed"] == statuses.count("source_failed") == len(
        report.source_failed)
    assert data["rows"] == report.rows == sum(run.rows for run in report.loaded)
    assert data["exitCode"] == report.exit_code == (
        EXIT_SOME_RUNS_FAILED if report.failed or report.expired else EXIT_OK)
    assert report.problems == [r for r in report.final()
                               if r.status in (RunStatus.FAILED, RunStatus.EXPIRED)]


def test_all_loaded_is_ok() -> None:
    report = report_of(outcome(1, RunStatus.LOADED, 10), outcome(2, RunStatus.LOADED, 5))
    assert report.exit_code == EXIT_OK and report.rows == 15
    assert_consistent(report)


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.EXPIRED])
def test_a_failed_or_expired_run_gives_exit_code_3(status: RunStatus) -> None:
    report = report_of(outcome(1, RunStatus.LOADED, 10), outcome(2, status))
    assert report.exit_code == EXIT_SOME_RUNS_FAILED
    assert [r.run_id for r in report.problems] == [2]
    assert_consistent(report)


def test_a_run_that_failed_then_loaded_in_one_sync_is_loaded_once() -> None:
    # E.g. its load failed on a damaged part, which was downloaded again and loaded.
    report = report_of(outcome(1, RunStatus.FAILED), outcome(2, RunStatus.LOADED, 3),
                       outcome(1, RunStatus.LOADED, 7, 100))
    assert report.failed == [] and report.exit_code == EXIT_OK
    assert [r.run_id for r in report.loaded] == [1, 2]        # first-seen order
    assert report.rows == 10 and report.bytes == 100
    assert [r["runId"] for r in report.to_json()["runs"]] == [1, 2]
    assert_consistent(report)


def test_a_run_loaded_then_failed_counts_as_failed() -> None:
    report = report_of(outcome(1, RunStatus.LOADED, 7), outcome(1, RunStatus.FAILED))
    assert [r.run_id for r in report.failed] == [1] and report.loaded == []
    assert report.rows == 0 and report.exit_code == EXIT_SOME_RUNS_FAILED
    assert_consistent(report)


def test_a_run_that_failed_at_the_source_is_reported_without_failing_the_sync() -> None:
    # It never had files: nothing a sync could load; its days are gaps for a backfill.
    report = report_of(outcome(1, RunStatus.LOADED, 4), outcome(2, RunStatus.SOURCE_FAILED))
    assert [r.run_id for r in report.source_failed] == [2]
    assert report.failed == [] and report.exit_code == EXIT_OK
    assert report.to_json()["runsSourceFailed"] == 1
    assert_consistent(report)


def test_a_dry_run_predicts_the_sync() -> None:
    planned = report_of(outcome(1, RunStatus.PLANNED), dry_run=True)
    assert planned.exit_code == EXIT_OK and planned.to_json()["runsPlanned"] == 1
    assert_consistent(planned)
    # A dry run that predicts expired files says so in its exit code as the sync would.
    doomed = report_of(outcome(1, RunStatus.PLANNED), outcome(2, RunStatus.EXPIRED),
                       dry_run=True)
    assert doomed.exit_code == EXIT_SOME_RUNS_FAILED
    assert_consistent(doomed)


def test_nothing_new_is_ok() -> None:
    report = report_of()
    assert report.exit_code == EXIT_OK and report.to_json()["runs"] == []
    assert_consistent(report)
