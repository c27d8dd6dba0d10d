"""`csload sync` as users run it: the lock, --dry-run, --json, filters, --table, the Python API
beside the CLI, and `csload demo`. Results are checked through the database."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from click.testing import Result

import csload
from csload.config import Limits, Settings
from csload.errors import ConfigError
from csload.pipeline.report import RunStatus, SyncEvent
from csload.pipeline.sync import staging_dir
from csload.simulator import Simulator
from tests.support.children import child_command, child_environ
from tests.support.syncref import (
    LEGACY_JOB,
    SESSIONS_JOB,
    VIEWS_JOB,
    assert_db_matches,
    assert_same_tables,
    create_job,
    default_tables,
    expected_tables,
    finish_once_job,
    run_of,
    successful_runs,
    table_names,
)

CLI = "from csload.cli import main; main()"
CHILD = "tests.support.sync_child"
HOLDER = """
import sys
from pathlib import Path
from csload.load.duckdb import DuckDBStore
store = DuckDBStore.open(Path(sys.argv[1]))
print("READY", flush=True)
sys.stdin.read()
store.close()
"""


def part_sizes(simulator: Simulator, run_id: int) -> list[int]:
    return [len(b) for b in simulator.part_bodies(simulator.run(run_id).job_id, run_id,
                                                  compressed=True)]


def rows_per_run(db: Path) -> dict[int, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT DISTINCT table_name FROM _csload.jobs").fetchall()]
        return dict(con.execute(" UNION ALL ".join(
            f'SELECT _run_id, count(*) FROM "{t}" GROUP BY ALL' for t in tables)).fetchall())  # noqa: S608
    finally:
        con.close()


# -- the lock ----------------------------------------------------------------------------------


def assert_refused_as_locked(result: Result, pid: int) -> None:
    assert result.exit_code == 1, result.output
    assert f"is in use by another process (PID {pid}: python" in result.stderr
    # DuckDB's own words stay out of it.
    assert "Could not set lock" not in result.output
    assert "Conflicting lock" not in result.output


def test_sync_fails_at_once_while_another_process_holds_the_database(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path, child_env: dict[str, str]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)], env=child_env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "READY"
        result = cli("sync", "--db", str(db_path))
        status = cli("status", "--db", str(db_path))
    finally:
        holder.communicate(input="", timeout=120)  # closes its stdin: it lets go and ends

    assert_refused_as_locked(result, holder.pid)
    # At once: before any request to the API or to storage.
    assert sum(simulator.stats.requests.values()) == 0
    assert status.exit_code == 1 and f"(PID {holder.pid}: python" in status.stderr
    assert holder.returncode == 0
    assert cli("sync", "--db", str(db_path)).exit_code == 0
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))


def test_sync_fails_at_once_while_another_sync_is_running(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path, child_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # A real `csload sync`, held in the middle of its downloads until we let it go on.
    log = tmp_path / "child.log"
    with log.open("w") as stderr:
        child = subprocess.Popen(
            child_command(CHILD, "sync", "--db", str(db_path)),
            env=child_environ({**child_env, "CSLOAD_TEST_STOP": "download:1",
                               "CSLOAD_TEST_ACTION": "hold"}),
            cwd=tmp_path, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=stderr)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "HOLDING", log.read_text()
            result = cli("sync", "--db", str(db_path))
        finally:
            child.communicate(input="", timeout=120)  # closes its stdin: the sync goes on

    assert_refused_as_locked(result, child.pid)
    assert child.returncode == 0, log.read_text()
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))


# -- dry run -----------------------------------------------------------------------------------


def test_dry_run_changes_nothing_and_reports_runs_parts_and_bytes(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path, tmp_path: Path
) -> None:
    listing = sorted(os.listdir(tmp_path))
    result = cli("sync", "--db", str(db_path), "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    assert not db_path.exists() and sorted(os.listdir(tmp_path)) == listing
    report = json.loads(result.stdout)
    runs = successful_runs(simulator)
    assert report["dryRun"] is True and report["runsPlanned"] == len(runs) == 7
    assert report["runsLoaded"] == 0
    total_parts = 0
    for run in report["runs"]:
        sizes = part_sizes(simulator, run["runId"])
        assert run["status"] == "planned"
        assert (run["parts"], run["bytes"]) == (len(sizes), sum(sizes))
        total_parts += len(sizes)
    assert sorted(r["runId"] for r in report["runs"]) == sorted(runs)
    assert report["bytes"] == sum(sum(part_sizes(simulator, r)) for r in runs) > 0
    # Sizes come from first-byte probes: no part was sent whole.
    stats = simulator.stats
    assert stats.storage_bytes_sent == 0
    assert stats.storage_requests == stats.statuses_by_kind[("storage", 206)] == total_parts

    # With a database: it plans only what is missing, and leaves the file as it was.
    assert cli("sync", "--db", str(db_path), "--until", "2026-11-22").exit_code == 0
    content = db_path.read_bytes()
    listing = sorted(os.listdir(tmp_path))
    sent = stats.storage_bytes_sent
    dry = cli("sync", "--db", str(db_path), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = {r["runId"] for r in json.loads(dry.stdout)["runs"]}
    assert planned == {r for r in runs if simulator.run(r).start.day > 22}
    assert db_path.read_bytes() == content and sorted(os.listdir(tmp_path)) == listing
    assert stats.storage_bytes_sent == sent
    text = cli("sync", "--db", str(db_path), "--dry-run")
    assert text.exit_code == 0 and "dry run: would load" in text.stdout
    assert db_path.read_bytes() == content


def test_dry_run_probes_storage_no_more_at_once_than_it_downloads(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    simulator.faults.latency = 0.05   # probes of the 7 runs would overlap
    two = replace(settings, limits=Limits(download_concurrency=2))

    report = csload.sync(two, db=db_path, dry_run=True)

    assert len(report.runs) == 7 and {r.status for r in report.runs} == {RunStatus.PLANNED}
    assert simulator.stats.max_storage_in_flight == 2


def test_dry_run_probes_the_parts_of_one_run_together(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    # One run's parts were probed one after the other: slower than the sync it previewed.
    job_id = create_job(settings, name="one run", fmt="CSV", scope="views",
                        fields=["session_id", "view_number", "url", "query", "errors.message"],
                        date_from=datetime(2026, 11, 18, tzinfo=UTC),
                        date_to=datetime(2026, 11, 25, tzinfo=UTC))
    run_id = finish_once_job(simulator, job_id)
    simulator.faults.latency = 0.05
    four = replace(settings, limits=Limits(download_concurrency=4))

    report = csload.sync(four, db=db_path, dry_run=True, jobs=(job_id,))

    [run] = report.runs
    assert run.run_id == run_id and run.parts >= 2, "the scenario needs a run of several parts"
    assert simulator.stats.max_storage_in_flight == min(run.parts, 4)


# -- --json ------------------------------------------------------------------------------------


def test_json_report_parses_and_matches_the_tables(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path
) -> None:
    result = cli("sync", "--db", str(db_path), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout is the JSON alone
    runs = successful_runs(simulator)
    counts = rows_per_run(db_path)
    assert (report["runsLoaded"], report["runsFailed"], report["runsExpired"]) == (7, 0, 0)
    assert report["exitCode"] == 0 and report["target"] == str(db_path)
    # The legacy job's run that FAILED at Contentsquare is recorded, as a gap to fill.
    failed_there = [r for r in report["runs"] if r["status"] == "source_failed"]
    assert [r["jobId"] for r in failed_there] == [LEGACY_JOB]
    loaded = [r for r in report["runs"] if r["status"] != "source_failed"]
    assert sorted(r["runId"] for r in loaded) == sorted(runs)
    tables = default_tables(simulator)
    for run in loaded:
        record = simulator.run(run["runId"])
        assert run["status"] == "loaded" and run["jobId"] == record.job_id
        assert run["table"] == tables[record.job_id]
        assert run["rows"] == counts[run["runId"]] == len(simulator.truth(record.job_id,
                                                                          record.run_id))
        assert run["bytes"] == sum(part_sizes(simulator, record.run_id))
        assert run["parts"] == len(part_sizes(simulator, record.run_id))
        assert run["windowStart"] == record.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert run["message"] is None
    assert report["rows"] == sum(counts.values())
    assert report["bytes"] == sum(r["bytes"] for r in loaded)
    again = json.loads(cli("sync", "--db", str(db_path), "--json").stdout)
    assert again["runs"] == [] and again["runsLoaded"] == 0 and again["exitCode"] == 0


def test_json_sync_prints_the_report_alone(
    simulator: Simulator, child_env: dict[str, str], tmp_path: Path
) -> None:
    """As a scheduler runs it: a real process, stdout the JSON, stderr empty."""
    db = tmp_path / "cron.duckdb"
    proc = subprocess.run([sys.executable, "-c", CLI, "sync", "--db", str(db), "--json"],
                          env=child_env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runsLoaded"] == len(successful_runs(simulator))
    assert proc.stderr == ""


# -- the Python API and the CLI ----------------------------------------------------------------


async def test_python_api_in_an_event_loop_and_the_cli_give_the_same_tables(
    simulator: Simulator, settings: Settings, child_env: dict[str, str], tmp_path: Path
) -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def on_event(_event: SyncEvent) -> None:
        threads.add(threading.get_ident())

    # Blocking csload.sync() from inside a running loop: it must run the sync in a thread.
    api_db = tmp_path / "api.duckdb"
    report = csload.sync(settings, db=api_db, on_event=on_event)
    assert report.exit_code == 0 and len(report.loaded) == 7
    assert threads and loop_thread not in threads

    async_db = tmp_path / "async.duckdb"
    assert len((await csload.sync_async(settings, db=async_db)).loaded) == 7

    cli_db = tmp_path / "cli.duckdb"
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "sync", "--db", str(cli_db)], env=child_env, cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr

    assert_same_tables(api_db, cli_db)
    assert_same_tables(api_db, async_db)
    assert_db_matches(cli_db, expected_tables(simulator, successful_runs(simulator)))


# -- the demo ----------------------------------------------------------------------------------


def test_demo_runs_and_leaves_both_tables(tmp_path: Path) -> None:
    # The most days it takes: with 6 or 7 it exited 3 on an expired run of its own data.
    # A name with a space and a quote: the closing hint's `duckdb FILE` is quoted for a shell.
    db = tmp_path / "my team's demo.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTSQUARE_")}
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "demo", "--db", str(db), "--days", "7"], env=env,
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)

    assert proc.returncode == 0, proc.stderr
    assert "pageviews per day and device" in proc.stdout
    assert "top pages by time on page" in proc.stdout
    assert "avg_seconds_on_page" in proc.stdout
    assert f"`duckdb {shlex.quote(str(db))}`" in proc.stdout
    con = duckdb.connect(str(db), read_only=True)
    try:
        sessions, views = con.execute(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM views)").fetchone() \
            or (0, 0)
        days = con.execute("SELECT count(DISTINCT _date) FROM views").fetchone()
    finally:
        con.close()
    assert sessions > 0 and views > 0
    assert days == (7,)


# -- filters and table names -------------------------------------------------------------------


def loaded_ids(result: Result) -> set[int]:
    assert result.exit_code == 0, result.output
    return {r["runId"] for r in json.loads(result.stdout)["runs"] if r["status"] == "loaded"}


def test_scope_job_and_day_filters_load_only_what_they_name(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path
) -> None:
    db = str(db_path)
    views = set(successful_runs(simulator, [VIEWS_JOB]))
    assert loaded_ids(cli("sync", "--db", db, "--scope", "views", "--json")) == views
    assert table_names(db_path) == {"views"}
    legacy = set(successful_runs(simulator, [LEGACY_JOB]))
    assert loaded_ids(cli("sync", "--db", db, "--job", str(LEGACY_JOB), "--json")) == legacy
    one_day = {run_of(simulator, SESSIONS_JOB, "2026-11-23")}
    assert loaded_ids(cli("sync", "--db", db, "--job", str(SESSIONS_JOB), "--since",
                          "2026-11-23", "--until", "2026-11-23", "--json")) == one_day
    assert_db_matches(db_path, expected_tables(simulator, views | legacy | one_day))

    rest = loaded_ids(cli("sync", "--db", db, "--json"))

    assert rest == set(successful_runs(simulator)) - views - legacy - one_day
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    unknown = cli("sync", "--db", db, "--job", "999")
    assert unknown.exit_code == 1 and "no such export job: 999" in unknown.stderr


def test_table_option_maps_a_job_to_its_own_table(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path
) -> None:
    result = cli("sync", "--db", str(db_path), "--table", f"{SESSIONS_JOB}=sessions_jsonl",
                 "--json")

    assert result.exit_code == 0, result.output
    tables = {SESSIONS_JOB: "sessions_jsonl"}
    assert {r["table"] for r in json.loads(result.stdout)["runs"]
            if r["jobId"] == SESSIONS_JOB} == {"sessions_jsonl"}
    assert table_names(db_path) == {"sessions", "sessions_jsonl", "views"}
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator), tables))
    status = json.loads(cli("status", "--db", str(db_path), "--json").stdout)
    assert {j["jobId"]: j["table"] for j in status["jobs"]} == {
        LEGACY_JOB: "sessions", SESSIONS_JOB: "sessions_jsonl", VIEWS_JOB: "views"}


@pytest.mark.parametrize("name", ['x"; DROP TABLE views; --', "../../etc", "_csload_runs",
                                  "Views"])
def test_a_bad_table_name_is_refused_before_anything_is_downloaded(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path, name: str
) -> None:
    result = cli("sync", "--db", str(db_path), "--table", f"{VIEWS_JOB}={name}")

    assert result.exit_code == 2, result.output   # a usage error
    assert f"invalid table name {name!r}" in result.stderr
    assert "Traceback" not in result.output
    assert sum(simulator.stats.requests.values()) == 0
    assert not db_path.exists() and not staging_dir(db_path).exists()


def test_a_bad_table_name_from_the_settings_is_refused_too(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    with pytest.raises(ConfigError, match="invalid table name"):
        csload.sync(replace(settings, tables={SESSIONS_JOB: "../../etc"}), db=db_path)
    with pytest.raises(ConfigError, match="invalid table name"):
        csload.sync(settings, db=db_path, tables={VIEWS_JOB: "a b"}, dry_run=True)
    assert sum(simulator.stats.requests.values()) == 0
    assert not db_path.exists()


def test_a_sync_with_nothing_to_load_leaves_no_staging_folder(
        settings: Settings, db_path: Path) -> None:
    """It left `.NAME.duckdb.staging` empty, owned by its user: on a team's shared database
    the other users' syncs then refused it as another user's folder."""
    assert csload.sync(settings, db=db_path).exit_code == 0
    assert not staging_dir(db_path).exists()
    again = csload.sync(settings, db=db_path)
    assert again.exit_code == 0 and not again.loaded
    assert not staging_dir(db_path).exists()


def test_a_recurring_job_deleted_at_contentsquare_is_said(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    """Neither the sync nor status said a word: status kept showing the job as it was."""
    assert csload.sync(settings, db=db_path).exit_code == 0
    del simulator.state.jobs[VIEWS_JOB]   # as the service's delete of the job
    said: list[SyncEvent] = []
    report = csload.sync(settings, db=db_path, on_event=said.append)
    assert report.exit_code == 0
    messages = [e.message for e in said if e.job_id == VIEWS_JOB and e.message]
    assert any("is no longer listed by Contentsquare (deleted?): table views keeps the rows "
               "it loaded" in m for m in messages), messages
    assert table_names(db_path) >= {"views"}
