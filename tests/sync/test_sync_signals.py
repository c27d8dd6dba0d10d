"""SIGINT, SIGTERM and SIGHUP sent to a real `csload sync` process: it stops cleanly and says so.

The child is the real CLI (sync_child.py) with one seam holding it at a chosen point until its
stdin closes: `after-commit:1` holds the writer thread right after the first run committed
(the event loop runs on, so the signal is received while the load is in progress), and
`download:3` holds the event loop itself while a part is being written (the signal is
received as soon as it runs again). After the signal: the exit code is 128 + the signal, the
last line says what was committed, the staging folder is gone, the tables hold exactly the
runs the ledger says, and a second sync loads exactly the rest.

The sync is limited to the daily jobs (whose tables are named after their scope) and to one
run per load transaction (`max_staged_runs = 1`, as in test_sync_crash.py).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest

import csload
from csload.config import Settings
from csload.pipeline.sync import staging_dir
from csload.simulator import Simulator
from tests.support.children import child_command, child_environ
from tests.support.syncref import (
    SESSIONS_JOB,
    VIEWS_JOB,
    assert_db_matches,
    expected_tables,
    successful_runs,
)

CHILD = "tests.support.sync_child"
JOBS = (SESSIONS_JOB, VIEWS_JOB)


def loaded_runs(db: Path) -> dict[int, int]:
    """Run id -> rows in its files, of the runs the ledger has as loaded."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT run_id, rows_read FROM _csload.runs "
                           "WHERE status = 'loaded'").fetchall()
    finally:
        con.close()
    return {int(run): int(count) for run, count in rows}


def interrupted_sync(tmp_path: Path, env: dict[str, str], db: Path, hold: str,
                     signum: signal.Signals, *args: str) -> tuple[int, str, str]:
    """Run the child until it holds at `hold`, send `signum`, let it go on; its exit code,
    stdout and stderr."""
    config = tmp_path / "csload.toml"
    config.write_text("[limits]\nmax_staged_runs = 1\n")
    jobs = [arg for job in JOBS for arg in ("--job", str(job))]
    child = subprocess.Popen(
        child_command(CHILD, "sync", "--db", str(db), "--config", str(config), *jobs, *args),
        env=child_environ({**env, "CSLOAD_TEST_STOP": hold, "CSLOAD_TEST_ACTION": "hold"}),
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    try:
        assert child.stdout.readline().strip() == "HOLDING", child.stderr.read()
        child.send_signal(signum)
        err = []
        if hold.startswith("after-commit"):
            # The event loop is free: wait until it has taken the signal before the writer
            # goes on, so that the stop finds a load in progress.
            for line in child.stderr:
                err.append(line)
                if f"{signum.name} received" in line:
                    break
        child.stdin.close()
        out = child.stdout.read()
        err.append(child.stderr.read())
        code = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return code, out, "".join(err)


def committed_line(err: str, signum: signal.Signals) -> tuple[int, int]:
    """(runs, rows) from the child's last line; checks what it says to do next."""
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted by {signum.name}: "), err
    assert "Run `csload sync` again: it loads exactly the rest" in last
    found = re.search(r"(\d+) runs? loaded and committed \(([\d,]+) rows\)", last)
    if found is None:
        assert "no run loaded" in last, last
        return 0, 0
    return int(found[1]), int(found[2].replace(",", ""))


@pytest.mark.parametrize(("signum", "hold", "code"), [
    (signal.SIGINT, "after-commit:1", 130),
    (signal.SIGTERM, "after-commit:1", 143),
    (signal.SIGTERM, "download:3", 143),
    (signal.SIGINT, "download:3", 130),
    (signal.SIGHUP, "after-commit:1", 129),   # it died at once, saying nothing
], ids=["SIGINT-while-loading", "SIGTERM-while-loading", "SIGTERM-mid-download",
        "SIGINT-mid-download", "SIGHUP-while-loading"])
def test_a_signal_stops_the_sync_cleanly_and_the_next_sync_loads_the_rest(
    simulator: Simulator, settings: Settings, child_env: dict[str, str], tmp_path: Path,
    signum: signal.Signals, hold: str, code: int,
) -> None:
    db = tmp_path / "cs.duckdb"
    # Slow storage: downloads are still going on when the signal comes.
    simulator.faults.bandwidth = 200_000

    returncode, _out, err = interrupted_sync(tmp_path, child_env, db, hold, signum)

    assert returncode == code, err
    assert "Traceback" not in err and "Aborted" not in err, err
    assert f"{signum.name} received: stopping the downloads" in err
    assert not staging_dir(db).exists(), "the staging folder was left behind"
    survived = loaded_runs(db)
    runs, rows = committed_line(err, signum)
    # What it says was committed is what the ledger holds, and the tables hold those runs.
    assert (runs, rows) == (len(survived), sum(survived.values())), err
    if hold.startswith("after-commit"):
        # The run whose commit was in progress when the signal came is counted.
        assert runs == 1, err
    assert_db_matches(db, expected_tables(simulator, survived))

    simulator.faults.bandwidth = None
    report = csload.sync(settings, db=db, jobs=JOBS)

    everything = successful_runs(simulator, JOBS)
    assert report.exit_code == 0
    assert sorted([*survived, *(run.run_id for run in report.loaded)]) == sorted(everything)
    assert_db_matches(db, expected_tables(simulator, everything))


def test_json_says_what_was_committed_when_interrupted(
    simulator: Simulator, child_env: dict[str, str], tmp_path: Path,
) -> None:
    """--json (a scheduler): the interruption is a JSON object on stdout too."""
    db = tmp_path / "cs.duckdb"
    returncode, out, err = interrupted_sync(tmp_path, child_env, db, "after-commit:1",
                                            signal.SIGTERM, "--json")

    assert returncode == 143, err
    stopped = orjson.loads(out)
    survived = loaded_runs(db)
    assert stopped["interrupted"] == "SIGTERM" and stopped["exitCode"] == 143
    assert stopped["runsLoaded"] == len(survived) == 1
    assert {run["runId"]: run["rows"] for run in stopped["runs"]} == survived
    assert not staging_dir(db).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_backfill_with_the_resume_advice(
    child_env: dict[str, str], tmp_path: Path, signum: signal.Signals,
) -> None:
    """The simulator's clock stands still, so the backfill's once job never finishes: it
    waits for it until the signal comes."""
    db = tmp_path / "cs.duckdb"
    child = subprocess.Popen(
        [sys.executable, "-m", "csload", "backfill", "--scope", "views", "--from", "2026-11-20",
         "--to", "2026-11-20", "--field", "session_id", "--field", "view_number",
         "--table", "views_archive", "--poll-interval", "0.05", "--db", str(db)],
        env=child_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    try:
        seen = []
        for line in child.stderr:
            seen.append(line)
            if "job created" in line:
                break
        child.send_signal(signum)
        _out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    err = "".join(seen) + err
    assert child.returncode == 128 + signum, err
    assert "Traceback" not in err and "Aborted" not in err, err
    assert "interrupted: run the same command again to resume" in err.strip().splitlines()[-1]
    assert not staging_dir(db).exists()


def test_a_backfill_stopped_with_json_says_what_it_created_and_loaded(
    child_env: dict[str, str], tmp_path: Path, simulator: Simulator,
) -> None:
    """With --json, stdout used to hold only {"error": ...}: the jobs a stopped backfill had
    created (which the next run reuses) and the runs it had loaded were not said."""
    db = tmp_path / "cs.duckdb"
    child = subprocess.Popen(
        [sys.executable, "-m", "csload", "backfill", "--scope", "views", "--from", "2026-11-20",
         "--to", "2026-11-20", "--field", "session_id", "--field", "view_number",
         "--table", "views_archive", "--poll-interval", "0.05", "--db", str(db), "--json"],
        env=child_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def created() -> list[int]:
        return [j.job_id for j in simulator.jobs if j.name.startswith("csload backfill")]

    try:
        deadline = time.monotonic() + 60
        while not created() and time.monotonic() < deadline:   # --json shows no progress
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode == 143, err
    said = orjson.loads(out)
    [job] = created()
    assert said == {"interrupted": "SIGTERM", "exitCode": 143, "runsLoaded": 0, "rows": 0,
                    "runs": [], "runsRecorded": 0, "jobsCreated": [job]}


def test_a_signal_handler_that_raises_leaves_the_database_closed(
    simulator: Simulator, settings: Settings, child_env: dict[str, str], tmp_path: Path,
) -> None:
    """A library user's SIGTERM handler (sys.exit) fired while the writer was inside its
    load: the sync's close failed ("connection is busy with another call") and the database
    stayed open, and locked, for the rest of the process (3 times in 6, found 2026-12-07)."""
    db = tmp_path / "cs.duckdb"
    child = subprocess.Popen(
        child_command("tests.support.raising_handler_child", str(db)),
        env=child_environ(child_env), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "BUSY"
        child.send_signal(signal.SIGTERM)   # the handler raises in the event loop's thread
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert out.split("\n")[:2] == ["RAISED SystemExit", "CONNECT OK"], out + err
    survived = loaded_runs(db)
    report = csload.sync(settings, db=db)
    everything = successful_runs(simulator)
    assert sorted([*survived, *(run.run_id for run in report.loaded)]) == sorted(everything)
    assert_db_matches(db, expected_tables(simulator, everything))
