"""Expired runs and `csload status`, in a world of 9 seeded days: the runs of the first two
days (and the legacy job's) finished more than 7 days ago, so storage no longer serves them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from click.testing import Result

import csload
from csload import RunStatus
from csload.config import Settings
from csload.simulator import SimConfig, Simulator
from csload.simulator.outcomes import fail_run
from csload.simulator.validation import JobDraft
from tests.support.syncref import (
    LEGACY_JOB,
    SESSIONS_JOB,
    SIM_START,
    VIEWS_JOB,
    assert_db_matches,
    create_job,
    day,
    expected_tables,
    expired_runs,
    finish_once_job,
    run_of,
    successful_runs,
)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7, days=9, sessions_per_day=60, start_time=SIM_START)


def test_expired_runs_are_recorded_with_a_backfill_hint(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path
) -> None:
    expired = expired_runs(simulator)
    # The daily jobs' runs of 16 and 17 November, and the legacy job's run of the 14th.
    assert len(expired) == 5
    assert {simulator.run(r).job_id for r in expired} == {SESSIONS_JOB, VIEWS_JOB, LEGACY_JOB}

    result = cli("sync", "--db", str(db_path), "--json")

    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert report["exitCode"] == 3 and report["runsExpired"] == 5
    outcomes = {r["runId"]: r for r in report["runs"]}
    assert {r for r, o in outcomes.items() if o["status"] == "expired"} == set(expired)
    for run_id in expired:
        message = outcomes[run_id]["message"]
        assert f"job {outcomes[run_id]['jobId']}, run {run_id}" in message
        assert "expired" in message and "backfill" in message and "once job" in message
        assert "(`csload backfill --gaps` does it)" in message   # daily jobs: --gaps fills
        # csload already fetched fresh URLs: the message must not tell the user to.
        assert "HTTP 403" in message and "fetch the run again" not in message
    loaded = [r for r in successful_runs(simulator) if r not in expired]
    assert {r for r, o in outcomes.items() if o["status"] == "loaded"} == set(loaded)
    assert_db_matches(db_path, expected_tables(simulator, loaded))

    status = cli("status", "--db", str(db_path))
    assert status.exit_code == 0, status.output
    # One line per job, with the days of its expired runs (not one line per run).
    for job_id in {simulator.run(r).job_id for r in expired}:
        days = sorted(simulator.run(r).start.date() for r in expired
                      if simulator.run(r).job_id == job_id)
        count = f"{len(days)} run{'s' if len(days) > 1 else ''}"
        word = "days" if len(days) > 1 else "day"
        line = (f'expired: job {job_id} "{simulator.job(job_id).name}": {count}, {word} '
                f"{', '.join(map(str, days))} — csload backfill --gaps fills ")
        assert status.stdout.count(line) == 1, status.stdout
    assert status.stdout.count("expired: ") == 3
    as_json = json.loads(cli("status", "--db", str(db_path), "--json").stdout)
    assert sorted(r["runId"] for r in as_json["expiredRuns"]) == sorted(expired)

    # Recorded once: the next sync asks storage for nothing and reports nothing new.
    storage = simulator.stats.storage_requests
    again = cli("sync", "--db", str(db_path), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["runs"] == []
    assert simulator.stats.storage_requests == storage


def test_status_shows_rows_coverage_windows_gaps_failed_and_expired_runs(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path
) -> None:
    # Up to the 20th, then from the 22nd: the 21st is a gap. One run of the 23rd fails.
    first = cli("sync", "--db", str(db_path), "--until", "2026-11-20")
    assert first.exit_code == 3, first.output  # the expired runs
    bad = run_of(simulator, VIEWS_JOB, "2026-11-23")
    simulator.faults.corrupt_part = (bad, 1)
    simulator.faults.corrupt_line = 1
    simulator.faults.corrupt_text = "not,the,header"
    second = cli("sync", "--db", str(db_path), "--since", "2026-11-22")
    assert second.exit_code == 3, second.output

    expired = expired_runs(simulator)
    loaded = [r for r in successful_runs(simulator)
              if r not in expired and r != bad
              and simulator.run(r).start.date() != date(2026, 11, 21)]
    expected = expected_tables(simulator, loaded)
    assert_db_matches(db_path, expected)

    result = cli("status", "--db", str(db_path), "--json")
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    tables = {t["table"]: t for t in state["tables"]}
    # The legacy job has a table of its own (other fields), empty: its one run expired.
    legacy = f"sessions_job_{LEGACY_JOB}"
    assert set(tables) == {*expected, legacy} and legacy not in expected
    assert tables[legacy]["rows"] == 0
    for name, (_, rows) in expected.items():
        dates = [r["_date"] for r in rows]
        assert tables[name]["rows"] == len(rows)
        assert tables[name]["firstDate"] == min(dates).isoformat() == "2026-11-18"
        assert tables[name]["lastDate"] == max(dates).isoformat() == "2026-11-24"
    jobs = {j["jobId"]: j for j in state["jobs"]}

    def expired_days(job_id: int) -> list[str]:
        return [simulator.run(r).start.date().isoformat() for r in expired
                if simulator.run(r).job_id == job_id]

    # Gaps: the days between the first and last loaded day with no loaded run, and the days
    # whose files expired before they were loaded (what `csload backfill --gaps` fills).
    assert expired_days(SESSIONS_JOB) and expired_days(VIEWS_JOB)
    assert jobs[SESSIONS_JOB]["gaps"] == sorted([*expired_days(SESSIONS_JOB), "2026-11-21"])
    assert jobs[VIEWS_JOB]["gaps"] == sorted(
        [*expired_days(VIEWS_JOB), "2026-11-21", "2026-11-23"])
    for job_id in (SESSIONS_JOB, VIEWS_JOB):
        assert jobs[job_id]["lastWindowStart"].startswith("2026-11-24T00:00:00")
        assert jobs[job_id]["lastWindowEnd"].startswith("2026-11-25T00:00:00")
        assert jobs[job_id]["table"] == simulator.job(job_id).scope
    # The legacy job: an expired run and one that FAILED at Contentsquare, so no window
    # loaded, and both days are its gaps.
    assert jobs[LEGACY_JOB]["lastWindowStart"] is None
    source_failed = [r.run_id for r in simulator.runs(LEGACY_JOB)
                     if simulator.run_state(r.run_id) == "FAILURE"]
    assert [r["runId"] for r in state["sourceFailedRuns"]] == source_failed
    assert jobs[LEGACY_JOB]["gaps"] == sorted(
        [*expired_days(LEGACY_JOB),
         *(simulator.run(r).start.date().isoformat() for r in source_failed)])
    assert [r["runId"] for r in state["failedRuns"]] == [bad]
    assert state["failedRuns"][0]["message"].startswith(f"job {VIEWS_JOB}, run {bad}, part 1: ")
    assert sorted(r["runId"] for r in state["expiredRuns"]) == sorted(expired)

    # The text form holds the same facts (off a terminal its tables are never cut), and one
    # line per kind of problem and job.
    text = cli("status", "--db", str(db_path))
    assert text.exit_code == 0, text.output
    out = text.stdout
    for name in ("sessions", "views"):
        assert f" {tables[name]['rows']:,} " in out
    assert "2026-11-18" in out and "2026-11-21" in out
    assert (f'failed: job {VIEWS_JOB} "Daily pageviews": 1 run, day 2026-11-23 — the next '
            f"csload sync tries it again; last error: run {bad}, part 1: line 1: ") in out
    for job_id in (SESSIONS_JOB, VIEWS_JOB):
        assert (f'expired: job {job_id} "{simulator.job(job_id).name}": 2 runs, days '
                f"{', '.join(expired_days(job_id))} — csload backfill --gaps fills them") in out
    assert "HTTP 403" not in out and "storage" not in out


def test_an_expired_run_of_a_job_that_is_not_daily_names_the_backfill_that_fills_it(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    """`csload backfill --gaps` fills the gaps of daily jobs only: for an expired run of an
    hourly or once job, the sync used to suggest it all the same ("nothing to do")."""
    job = create_job(settings, name="a week of views", fmt="CSV", scope="views",
                     fields=["session_id", "view_number", "url"],
                     date_from=day("2026-11-20"), date_to=day("2026-11-22"))
    run = finish_once_job(simulator, job)
    simulator.advance_days(8)   # its files are gone

    report = csload.sync(settings, db=db_path, jobs=[job])

    [outcome] = report.runs
    assert (outcome.run_id, outcome.status) == (run, RunStatus.EXPIRED)
    assert (f"(`csload backfill --like {job} --from 2026-11-20 --to 2026-11-21` does it)"
            in (outcome.message or "")), outcome.message


def test_an_hourly_jobs_missing_days_get_a_backfill_that_fills_them(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path
) -> None:
    """An hourly job's expired runs over several days, and one that FAILED at Contentsquare:
    the sync named `csload backfill --gaps` (which fills daily jobs only, so it answered
    "nothing to do") and, for the expired ones, the first run's day only (QA, 2026-12-08)."""
    like = simulator.job(VIEWS_JOB)
    hourly = simulator.state.create_job(JobDraft(
        name="Hourly views", format=like.format, scope=like.scope, frequency="hourly",
        fields=like.fields, device_label="all", segment_id=None, date_from=None,
        date_to=None), simulator.clock.now()).job_id
    simulator.advance(2.5 * 86_400)           # hourly runs over three days
    running: list[int] = []
    for _ in range(120):                      # the next hour's run, before it finishes
        running = [r.run_id for r in simulator.runs(hourly)
                   if simulator.run_state(r.run_id) not in ("SUCCESS", "FAILURE")]
        if running:
            break
        simulator.advance(60)
    fail_run(simulator, running[0])
    simulator.advance(8 * 86_400)             # the first days' files are gone
    failed = simulator.run(running[0])

    result = cli("sync", "--db", str(db_path), "--job", str(hourly))

    assert result.exit_code == 3, result.output
    expected_days = sorted({simulator.run(r).start.date() for r in expired_runs(simulator)
                            if simulator.run(r).job_id == hourly})
    assert len(expected_days) >= 2
    first, last = expected_days[0], expected_days[-1]
    assert (f"csload backfill --like {hourly} --from {first} --to {last} exports their days "
            "again") in result.output, result.output
    day_of_failure = failed.start.date()
    assert (f"`csload backfill --like {hourly} --from {day_of_failure} --to {day_of_failure}` "
            "exports its days again with a once job") in result.output, result.output
    assert "--gaps" not in result.output
    # Its missing hours are not looked for: status says so, not a blank "daily gaps" cell.
    shown = cli("status", "--db", str(db_path))
    [row] = [line for line in shown.stdout.splitlines() if line.startswith(f"│ {hourly} ")]
    assert row.rstrip("│ ").endswith("not checked"), row


def test_a_run_made_before_its_window_ended_is_loaded_with_a_warning(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    """A once job over a day not over yet (made through the API, which csload's own checks
    now refuse): its run holds the rows up to when it ran, and was loaded as whole without
    a word (QA, 2026-12-08)."""
    like = simulator.job(VIEWS_JOB)
    job = simulator.state.create_job(JobDraft(
        name="Today so far", format=like.format, scope=like.scope, frequency="once",
        fields=like.fields, device_label="all", segment_id=None, date_from=day("2026-11-25"),
        date_to=day("2026-11-26")), simulator.clock.now()).job_id
    run = finish_once_job(simulator, job)

    report = csload.sync(settings, db=db_path, jobs=[job])

    assert [(r.run_id, r.status) for r in report.runs] == [(run, RunStatus.LOADED)]
    [warning] = [w for w in report.warnings if "before its window ended" in w]
    assert warning.startswith(f"job {job}, run {run}: it finished at 2026-11-25 ")
    assert "window ended (2026-11-26 00:00 UTC)" in warning
    assert "export those days again once they are over" in warning
    # A run of whole past days says nothing of the kind.
    assert not [w for w in csload.sync(settings, db=db_path).warnings
                if "before its window ended" in w]
