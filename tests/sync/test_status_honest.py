"""An honest `csload status` (issue 19, point 3 and the status screens of point 6).

* A day whose run FAILED at Contentsquare is a gap (status, `backfill --gaps`), until filled.
* Expired days that a backfill filled since are reported as filled, not as problems.
* One line per kind of problem and job, with the days; no storage detail, no repeated label.
* The screens: never cut off a terminal; daily windows as one day; in a real terminal (tmux)
  at 80 and 120 columns.

The simulator is served from a thread; backfills get a `sleep` that moves its clock.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import anyio
import pytest
from click.testing import Result

import csload
from csload.config import Settings
from csload.load.backfill_ledger import BackfillLedger
from csload.load.duckdb import connect
from csload.load.status import StoreStatus, days_text, window_label
from csload.pipeline.report import RunStatus
from csload.simulator import SimConfig, Simulator
from csload.simulator.outcomes import fail_run
from csload.target import read_target_status
from tests.support.syncref import LEGACY_JOB, SESSIONS_JOB, SIM_START, VIEWS_JOB, run_of

NOV_25 = date(2026, 11, 25)
# In the module's world of 9 days, the daily runs of these days had expired at SIM_START.
EXPIRED_DAYS = (date(2026, 11, 16), date(2026, 11, 17))


@pytest.fixture
def sim_config() -> SimConfig:
    # 9 days: the runs of 16 and 17 November (and the legacy job's of the 14th) have expired.
    return SimConfig(seed=7, days=9, sessions_per_day=20, start_time=SIM_START)


class SimSleep:
    """A backfill's `sleep` and `clock`: waiting moves the simulator's clock, not real time."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def sleep(self, seconds: float) -> None:
        self.sim.advance(seconds)
        await anyio.sleep(0)

    def clock(self) -> datetime:
        return self.sim.clock.now()


def fail_views_of_nov_25(sim: Simulator) -> int:
    """Move the clock to when the daily runs of 25 November run, make the pageviews one end
    in FAILURE, and let both finish (the sessions one succeeds). Returns the failed run."""
    sim.advance((datetime(2026, 11, 26, 4, 10, tzinfo=UTC) - SIM_START).total_seconds())
    failed = run_of(sim, VIEWS_JOB, "2026-11-25")
    fail_run(sim, failed)
    sim.advance(3600)
    assert sim.run_state(failed) == "FAILURE"
    assert sim.run_state(run_of(sim, SESSIONS_JOB, "2026-11-25")) == "SUCCESS"
    return failed


def legacy_failure(sim: Simulator) -> tuple[int, date]:
    """The seeded legacy job's run that FAILED at the source, and its day."""
    (run,) = [r for r in sim.runs(LEGACY_JOB) if sim.run_state(r.run_id) == "FAILURE"]
    return run.run_id, run.start.date()


def gaps_planned(target: dict[str, str]) -> dict[int, list[date]]:
    """What `backfill --gaps` plans: the coverage gaps of the target's ledger."""
    if "db" in target:
        con = connect(target["db"], read_only=True)
        try:
            return BackfillLedger(con).coverage_gaps()
        finally:
            con.close()
    from csload.lake.reader import lake_read_ledger

    return lake_read_ledger(target["parquet"],
                            lambda ledger: BackfillLedger(ledger.con).coverage_gaps()) or {}


def status_of(target: dict[str, str]) -> StoreStatus:
    return read_target_status(db=target.get("db"), parquet=target.get("parquet"))


@pytest.fixture(params=["db", "parquet"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return {request.param: str(tmp_path / ("cs.duckdb" if request.param == "db" else "lake"))}


def status_lines(cli: Callable[..., Result], target: dict[str, str]) -> list[str]:
    (kind, where), = target.items()
    result = cli("status", f"--{kind}", where)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


# -- failed at the source ------------------------------------------------------------------------


def test_a_day_that_failed_at_the_source_is_a_gap_until_a_backfill_fills_it(
        simulator: Simulator, settings: Settings, cli: Callable[..., Result],
        target: dict[str, str]) -> None:
    legacy_run, legacy_day = legacy_failure(simulator)
    first = csload.sync(settings, **target)
    # Recorded and reported; a failure at the source is no failure of the sync (exit code 3
    # is for the runs that expired).
    assert [r.run_id for r in first.source_failed] == [legacy_run]
    assert first.failed == [] and len(first.expired) == 5 and first.exit_code == 3

    failed = fail_views_of_nov_25(simulator)
    report = csload.sync(settings, **target)
    assert [r.run_id for r in report.source_failed] == [failed]
    assert report.failed == report.expired == [] and report.exit_code == 0
    assert report.to_json()["runsSourceFailed"] == 1

    state = status_of(target)
    jobs = {j.job_id: j for j in state.jobs}
    # The 25th is after the last loaded day: no "hole between loaded days" finds it.
    assert jobs[VIEWS_JOB].gaps == (*EXPIRED_DAYS, NOV_25)
    assert jobs[SESSIONS_JOB].gaps == EXPIRED_DAYS
    assert legacy_day in jobs[LEGACY_JOB].gaps
    assert {r.run_id for r in state.source_failed} == {failed, legacy_run}
    assert gaps_planned(target)[VIEWS_JOB] == [*EXPIRED_DAYS, NOV_25]
    lines = status_lines(cli, target)
    assert ('failed at Contentsquare: job 1121 "Daily pageviews": 1 run, day 2026-11-25 '
            "(no files) — csload backfill --gaps fills it") in lines

    again = csload.sync(settings, **target)
    assert again.runs == [] and again.exit_code == 0

    # The backfill plans that day, loads it, and status then calls it filled.
    clock = SimSleep(simulator)
    filled = csload.backfill(settings, gaps=True, scope="views", sleep=clock.sleep,
                             clock=clock.clock, poll_interval=10, **target)
    assert filled.exit_code == 0, filled.to_json()
    assert [(i.window.start, i.window.end) for i in filled.items] == [
        (EXPIRED_DAYS[0], date(2026, 11, 18)), (NOV_25, date(2026, 11, 26))]
    state = status_of(target)
    assert {j.job_id: j for j in state.jobs}[VIEWS_JOB].gaps == ()
    assert failed in [r.run_id for r in state.filled]
    assert failed not in {r.run_id for r in state.source_failed}
    lines = status_lines(cli, target)
    assert not [line for line in lines if line.startswith("failed at Contentsquare: job 1121")]
    assert ('filled: job 1121 "Daily pageviews": 3 runs expired or failed at Contentsquare, '
            "days 2026-11-16, 2026-11-17, 2026-11-25 — loaded since by a re-run or a backfill"
            ) in lines


def test_the_ledger_records_runs_failed_at_the_source_once(tmp_path: Path) -> None:
    """Ledger.record_source_failed, on a real DuckDB file: new runs only, never over a run
    the ledger holds, and their days are gaps (coverage_gaps) until a loaded run covers them."""
    from csload.api.models import Job, JobField, Run
    from csload.load.ledger import Ledger, run_row

    def day(n: int) -> datetime:
        return datetime(2026, 11, n, tzinfo=UTC)

    def run(run_id: int, n: int, state: str = "FAILURE") -> Run:
        return Run(run_id=run_id, job_id=7, state=state, start_date=day(n),
                   end_date=day(n + 1), finished_at=day(n + 1))

    job = Job(job_id=7, name="Daily pageviews", format="CSV", scope="views",
              frequency="daily", fields=(JobField("session_id"),))
    con = connect(tmp_path / "ledger.duckdb")
    try:
        ledger = Ledger(con)
        ledger.ensure()
        ledger.upsert_job(job, "views", day(25))
        ledger.record_runs([run_row(run(1, 20, "SUCCESS"), "views", "loaded", rows_read=1,
                                    rows=1, nbytes=1, parts=1, started=day(21),
                                    finished=day(21), message=None)])
        recorded = ledger.record_source_failed(job, [run(1, 20), run(2, 21), run(3, 22)],
                                               "views", day(25))
        assert [r.run_id for r in recorded] == [2, 3]        # run 1 stays loaded
        assert ledger.record_source_failed(job, [run(2, 21)], "views", day(26)) == []
        assert [(r.run_id, r.status) for r in ledger.runs()] == [
            (1, "loaded"), (2, "source_failed"), (3, "source_failed")]
        assert "FAILURE" in (ledger.source_failed_runs()[0].message or "")
        assert BackfillLedger(con).coverage_gaps() == {7: [date(2026, 11, 21),
                                                           date(2026, 11, 22)]}
        # A re-run of the 21st, loaded: that day is covered, its failed run filled.
        ledger.record_runs([run_row(run(4, 21, "SUCCESS"), "views", "loaded", rows_read=1,
                                    rows=1, nbytes=1, parts=1, started=day(27),
                                    finished=day(27), message=None)])
        coverage = BackfillLedger(con).coverage()
        assert coverage.gaps == {7: [date(2026, 11, 22)]} and coverage.filled == {2}
    finally:
        con.close()


# -- expired, then filled ------------------------------------------------------------------------

def test_expired_runs_are_one_line_per_job_with_the_days_until_filled(
        simulator: Simulator, settings: Settings, cli: Callable[..., Result],
        target: dict[str, str]) -> None:
    first = csload.sync(settings, **target)
    assert first.exit_code == 3 and len(first.expired) == 5

    lines = status_lines(cli, target)
    expected = {
        SESSIONS_JOB: 'expired: job 1120 "Daily sessions": 2 runs, days 2026-11-16, '
                      "2026-11-17 — csload backfill --gaps fills them",
        VIEWS_JOB: 'expired: job 1121 "Daily pageviews": 2 runs, days 2026-11-16, '
                   "2026-11-17 — csload backfill --gaps fills them",
    }
    for line in expected.values():
        assert lines.count(line) == 1, lines
    problems = [line for line in lines if line.startswith(("expired:", "failed"))]
    # One line per kind and job, naming the job once (not "job J, run R:" twice), with the
    # days and no storage detail.
    kinds_and_jobs = [(line.split(": job ")[0], line.split(": job ")[1].split()[0])
                      for line in problems]
    # Expired: the three jobs; failed at the source: the legacy job.
    assert len(kinds_and_jobs) == len(set(kinds_and_jobs)) == 3 + 1
    for line in problems:
        assert line.count("job ") == 1 and not re.search(r"run \d", line), line
        assert re.search(r"days? 2026-11-\d\d", line), line
        for leak in ("HTTP", "403", "storage", "http://", "https://", "127.0.0.1", "URL"):
            assert leak not in line, line

    clock = SimSleep(simulator)
    filled = csload.backfill(settings, gaps=True, scope="views", sleep=clock.sleep,
                             clock=clock.clock, poll_interval=10, **target)
    assert filled.exit_code == 0, filled.to_json()

    state = status_of(target)
    views_expired = {r for r in first.expired if r.job_id == VIEWS_JOB}
    assert {r.run_id for r in state.filled} == {r.run_id for r in views_expired}
    assert VIEWS_JOB not in {r.job_id for r in state.expired}
    assert SESSIONS_JOB in {r.job_id for r in state.expired}
    (kind, where), = target.items()
    as_json = json.loads(cli("status", f"--{kind}", where, "--json").stdout)
    assert VIEWS_JOB not in {r["jobId"] for r in as_json["expiredRuns"]}
    assert {r["runId"] for r in as_json["filledRuns"]} == {r.run_id for r in views_expired}
    lines = status_lines(cli, target)
    assert expected[VIEWS_JOB] not in lines and expected[SESSIONS_JOB] in lines
    assert ('filled: job 1121 "Daily pageviews": 2 runs expired, days 2026-11-16, '
            "2026-11-17 — loaded since by a re-run or a backfill") in lines


def test_an_expired_rerun_of_a_loaded_day_is_a_gap_not_filled_by_the_run_it_replaces(
        simulator: Simulator, settings: Settings, target: dict[str, str]) -> None:
    # The day's first run was loaded; its re-run (corrected data) expired before the next
    # sync. The table holds the rows the re-run was to replace: status said "filled" and
    # `backfill --gaps` skipped the day, for good (found by QA, 2026-12-07).
    csload.sync(settings, **target)
    day = date(2026, 11, 23)
    first = run_of(simulator, VIEWS_JOB, str(day))
    rerun = simulator.rerun(VIEWS_JOB, day)
    simulator.advance_days(8)   # cron down: the re-run's files expire unloaded
    report = csload.sync(settings, **target)
    assert rerun in {r.run_id for r in report.expired}

    state = status_of(target)
    assert rerun in {r.run_id for r in state.expired}, state.to_json()
    assert rerun not in {r.run_id for r in state.filled}
    assert day in gaps_planned(target)[VIEWS_JOB]
    assert first not in {r.run_id for r in state.expired}   # loaded, as before

    clock = SimSleep(simulator)
    filled = csload.backfill(settings, gaps=True, scope="views", sleep=clock.sleep,
                             clock=clock.clock, poll_interval=10, **target)
    assert filled.exit_code == 0, filled.to_json()
    state = status_of(target)
    assert rerun in {r.run_id for r in state.filled}
    assert day not in gaps_planned(target).get(VIEWS_JOB, [])


# -- the report ------------------------------------------------------------------------------------


def test_the_report_agrees_with_itself_on_damaged_failed_and_expired_runs(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    # One part arrives damaged once (downloaded again and loaded: not a failure), one part
    # does not parse (failed), and the runs of 16-17 November have expired.
    damaged = run_of(simulator, SESSIONS_JOB, "2026-11-22")
    simulator.faults.storage_fault_part = (damaged, 1)
    simulator.faults.storage_fault_part_kind = "truncate"
    simulator.faults.storage_fault_part_next = 1
    bad = run_of(simulator, VIEWS_JOB, "2026-11-23")
    simulator.faults.corrupt_part = (bad, 1)
    simulator.faults.corrupt_line = 1
    simulator.faults.corrupt_text = "not,the,header"

    report = csload.sync(settings, db=db_path)

    assert damaged in {r.run_id for r in report.loaded}
    assert [r.run_id for r in report.failed] == [bad]
    assert {r.job_id for r in report.expired} == {SESSIONS_JOB, VIEWS_JOB, LEGACY_JOB}
    assert report.exit_code == 3
    counted = json.loads(json.dumps(report.to_json()))
    statuses = [r["status"] for r in counted["runs"]]
    assert len(statuses) == len({r["runId"] for r in counted["runs"]})
    assert (counted["runsLoaded"], counted["runsFailed"], counted["runsExpired"]) == (
        statuses.count("loaded"), statuses.count("failed"), statuses.count("expired"))
    assert counted["exitCode"] == report.exit_code
    assert all(r.status is not RunStatus.PLANNED for r in report.runs)

    # The failed run loads on the next sync: that report is clean.
    simulator.faults.reset()
    again = csload.sync(settings, db=db_path)
    assert [r.run_id for r in again.loaded] == [bad]
    assert again.failed == [] and again.expired == [] and again.exit_code == 0


# -- the screens -----------------------------------------------------------------------------------


def test_status_piped_is_never_cut_and_shows_daily_windows_as_days(
        settings: Settings, cli: Callable[..., Result], db_path: Path) -> None:
    csload.sync(settings, db=db_path)
    result = cli("status", "--db", str(db_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = {job: next(line for line in lines if line.startswith(f"│ {job} "))
            for job in (LEGACY_JOB, SESSIONS_JOB, VIEWS_JOB)}
    # Each job is one line, every cell whole, though wider than 80 columns.
    assert "Legacy sessions (CSV)" in rows[LEGACY_JOB]
    assert max(len(line) for line in lines) > 80
    for job in (SESSIONS_JOB, VIEWS_JOB):
        cells = [cell.strip() for cell in rows[job].split("│")[1:-1]]
        assert cells[-2] == "2026-11-24", cells       # the last window: one day
        assert cells[-1] == "2026-11-16, 2026-11-17"   # the expired days
        assert cells[2] == {SESSIONS_JOB: "sessions", VIEWS_JOB: "views"}[job]  # its table
    assert "->" not in result.stdout and "00:00" not in result.stdout


def test_windows_are_shown_as_people_name_them() -> None:
    def at(day: int, hour: int = 0) -> datetime:
        return datetime(2026, 11, day, hour, tzinfo=UTC)

    assert window_label(at(20), at(21)) == "2026-11-20"                  # daily
    assert window_label(at(20, 13), at(20, 14)) == "2026-11-20 13:00"    # hourly
    assert window_label(at(1), at(8)) == "2026-11-01..2026-11-07"        # once, whole days
    assert window_label(at(1, 6), at(2, 6)) == "2026-11-01 06:00 -> 2026-11-02 06:00"
    assert days_text([date(2026, 11, d) for d in (23, 20, 21)]) == (
        "2026-11-20, 2026-11-21, 2026-11-23")
    assert days_text([date(2026, 11, d) for d in range(1, 31)]) == "2026-11-01..2026-11-30"


def tmux_screen(command: list[str], width: int, tmp_path: Path, env: dict[str, str]) -> str:
    """Run `command` in a real terminal (a tmux pane `width` columns wide) and return the
    screen once it has finished: tmux's wait-for channel says when, no sleeping."""
    socket = f"csload-test-{tmp_path.name}"
    script = tmp_path / f"run-{width}.sh"
    quoted = " ".join(f"'{part}'" for part in command)
    script.write_text(f"{quoted}\ntmux -L {socket} wait-for -S done-{width}\nexec cat\n")
    base = ["tmux", "-L", socket]
    subprocess.run([*base, "-f", "/dev/null", "new-session", "-d", "-x", str(width),
                    "-y", "60", "-e", f"PATH={env['PATH']}", f"sh {script}"],
                   check=True, env=env, timeout=30)
    try:
        subprocess.run([*base, "wait-for", f"done-{width}"], check=True, env=env, timeout=60)
        shown = subprocess.run([*base, "capture-pane", "-p"], check=True, env=env,
                               capture_output=True, text=True, timeout=30)
        return shown.stdout
    finally:
        subprocess.run([*base, "kill-server"], env=env, timeout=30, check=False)


@pytest.mark.parametrize("width", [80, 120])
def test_status_in_a_real_terminal(settings: Settings, child_env: dict[str, str],
                                   db_path: Path, tmp_path: Path, width: int) -> None:
    csload.sync(settings, db=db_path)
    env = {k: v for k, v in child_env.items() if k not in ("COLUMNS", "LINES", "TMUX")}
    env.setdefault("TERM", "xterm-256color")
    screen = tmux_screen([sys.executable, "-m", "csload", "status", "--db", str(db_path)],
                         width, tmp_path, env)
    lines = screen.splitlines()
    assert max(len(line) for line in lines) <= width
    for job in (SESSIONS_JOB, VIEWS_JOB):
        row = next(line for line in lines if line.startswith(f"│ {job} "))
        assert "2026-11-24" in row, screen             # a daily window, one day, unwrapped
    assert "->" not in screen
    expired = [line for line in lines if line.startswith("expired:")]
    assert expired and all(line.count("job ") == 1 for line in expired), screen
    if width == 120:
        # Wide enough: each job on one line, its name whole.
        assert any(line.startswith(f"│ {LEGACY_JOB} ") and "Legacy sessions (CSV)" in line
                   for line in lines), screen
