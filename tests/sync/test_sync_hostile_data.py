"""Hostile data in a part fails THAT run, never the sync (issue 16, part C).

Storage serves one part of one run with a crafted body (`Faults.part_bodies`): a timestamp
beyond year 9999, a header of 3,000 columns, a column name of 300 characters, a negative
`view_number` in a keyed row, a run listing more parts than the cap, a batch that runs out of
memory. Each time the sync finishes (exit 3, no traceback), the bad run is recorded failed with
a message naming job, run, part and (for a parse error) line, the other runs hold exactly the
simulator's truth, and `csload status` reads what was committed. The lake takes the same paths
through the loader (its work database is a DuckDBStore); where the path differs (the lake
writes Parquet, which Python-side readers must read back) a lake test runs too.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import Result

import csload
from csload.config import Limits, Settings
from csload.simulator import Simulator
from csload.simulator.formats import csv_quote
from tests.support.syncref import (
    SESSIONS_JOB,
    VIEWS_JOB,
    assert_db_matches,
    assert_rows_equal,
    expected_tables,
    lake_rows,
    run_of,
    successful_runs,
    table_rows,
)

DAY = "2026-11-23"
PART = 2


# --- crafted bodies ---------------------------------------------------------------------------

def part_text(sim: Simulator, job: int, run: int, part: int = PART) -> str:
    return gzip.decompress(sim.part_bodies(job, run, compressed=True)[part - 1]).decode()


def serve(sim: Simulator, run: int, text: str, part: int = PART) -> None:
    sim.faults.part_bodies[(run, part)] = gzip.compress(text.encode())


def csv_with_value(sim: Simulator, run: int, column: str, value: str) -> tuple[str, int]:
    """The views part with `value` in `column` of its first data row (line 2: the first
    record of a simulator part is one line); returns the body and that line."""
    lines = part_text(sim, VIEWS_JOB, run).split("\n")
    header = lines[0].split(",")
    index = header.index(column)
    # Every field left of view_time / view_number is a plain number in the simulator's rows.
    assert all("," not in f and '"' not in f for f in lines[1].split(",")[:index + 1])
    fields = lines[1].split(",")
    fields[index] = value
    lines[1] = ",".join(fields)
    return "\n".join(lines), 2


def csv_with_header_columns(sim: Simulator, run: int, names: list[str]) -> str:
    """The views part with columns `names` appended to its header, each row holding "x"."""
    lines = part_text(sim, VIEWS_JOB, run).split("\n")
    extra = ["x"] * len(names)
    out = [",".join([lines[0], *(csv_quote(n) for n in names)])]
    out += [",".join([line, *extra]) for line in lines[1:] if line]
    return "\n".join(out) + "\n"


def jsonl_with(sim: Simulator, run: int, change: Callable[[dict[str, Any]], None]) -> str:
    """The sessions part with `change` applied to its first object (line 1)."""
    lines = part_text(sim, SESSIONS_JOB, run).split("\n")
    first = json.loads(lines[0])
    change(first)
    lines[0] = json.dumps(first)
    return "\n".join(lines)


# --- checks -----------------------------------------------------------------------------------

def sync_json(cli: Callable[..., Result], *args: str) -> tuple[Result, dict[str, Any]]:
    result = cli("sync", *args, "--json")
    assert "Traceback" not in result.output, result.output
    return result, json.loads(result.stdout)


def failed_message(report: dict[str, Any], run: int) -> str:
    failed = {r["runId"]: r["message"] for r in report["runs"] if r["status"] == "failed"}
    assert list(failed) == [run], report["runs"]
    return str(failed[run])


def assert_others_exact(db: Path, sim: Simulator, jobs: list[int], bad: int) -> None:
    others = [r for r in successful_runs(sim, jobs) if r != bad]
    assert_db_matches(db, expected_tables(sim, others))


def ledger_status(db: Path, run: int) -> tuple[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT status, message FROM _csload.runs WHERE run_id = ?",
                          [run]).fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0]), str(row[1])


def assert_status_reads(cli: Callable[..., Result], *target: str) -> dict[str, Any]:
    text = cli("status", *target)
    assert text.exit_code == 0 and "Traceback" not in text.output, text.output
    machine = cli("status", *target, "--json")
    assert machine.exit_code == 0 and "Traceback" not in machine.output, machine.output
    return dict(json.loads(machine.stdout))


# --- dates and timestamps beyond what readers can hold -----------------------------------------

@pytest.mark.parametrize("value", ["99999-01-01 00:00:00", "10000-01-01 00:00:00",
                                   "-0001-06-01 00:00:00"])
@pytest.mark.hostile("a CSV timestamp or date beyond year 9999 (or before year 1)",
                     "that run fails naming job, run, part and line; the others load exactly; "
                     "exit 3")
def test_hostile_timestamp_out_of_range_fails_its_run(
        value: str, simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    bad = run_of(simulator, VIEWS_JOB, DAY)
    body, line = csv_with_value(simulator, bad, "view_time", value)
    serve(simulator, bad, body)

    result, report = sync_json(cli, "--db", str(db_path), "--job", str(VIEWS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {VIEWS_JOB}, run {bad}, part {PART}: line {line}: " in message, message
    assert "view_time" in message and "out of range" in message, message
    assert_others_exact(db_path, simulator, [VIEWS_JOB], bad)
    assert ledger_status(db_path, bad)[0] == "failed"
    assert_status_reads(cli, "--db", str(db_path))


@pytest.mark.hostile("an out-of-range timestamp in JSONL, and inside an array",
                     "that run fails with its line; the others load exactly")
def test_hostile_timestamp_out_of_range_in_jsonl_and_in_an_array(
        simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    """JSONL is read by another reader, and an array of timestamps is checked element-wise."""
    bad = run_of(simulator, SESSIONS_JOB, DAY)
    serve(simulator, bad, jsonl_with(simulator, bad, lambda row: row.update(
        {"app_events.event_time": ["2026-11-23 10:00:00", "99999-01-01 00:00:00"]})))

    result, report = sync_json(cli, "--db", str(db_path), "--job", str(SESSIONS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {SESSIONS_JOB}, run {bad}, part {PART}: line 1: " in message, message
    assert "app_events_event_time" in message and "out of range" in message, message
    assert_others_exact(db_path, simulator, [SESSIONS_JOB], bad)


@pytest.mark.hostile("an out-of-range timestamp into a lake (every lake sync died with a "
                     "traceback)",
                     "that run fails alone; the lake holds the others exactly")
def test_hostile_timestamp_out_of_range_into_a_lake(
        simulator: Simulator, cli: Callable[..., Result], tmp_path: Path) -> None:
    """Today the lake sync died with a raw traceback at every sync until the files expired."""
    root = tmp_path / "lake"
    bad = run_of(simulator, VIEWS_JOB, DAY)
    body, line = csv_with_value(simulator, bad, "view_time", "99999-01-01 00:00:00")
    serve(simulator, bad, body)

    result, report = sync_json(cli, "--parquet", str(root), "--job", str(VIEWS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {VIEWS_JOB}, run {bad}, part {PART}: line {line}: " in message, message
    others = [r for r in successful_runs(simulator, [VIEWS_JOB]) if r != bad]
    assert_rows_equal(lake_rows(root, "views")[1], expected_tables(simulator, others)["views"][1])
    status = assert_status_reads(cli, "--parquet", str(root))
    assert [r["runId"] for r in status["failedRuns"]] == [bad]


@pytest.mark.hostile("a year-9999 date loaded, and a year-99999 `_date` an older csload committed",
                     "`csload status` (text and --json) reads both, no traceback")
def test_hostile_status_reads_year_9999_and_beyond(
        simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    """A year-9999 date loads (every reader holds it) and `status` shows it; a database an
    older csload committed with a year-99999 `_date` is read too, not a traceback."""
    bad = run_of(simulator, VIEWS_JOB, DAY)
    body, _ = csv_with_value(simulator, bad, "view_time", "9999-12-31 23:59:59")
    serve(simulator, bad, body)

    result, _ = sync_json(cli, "--db", str(db_path), "--job", str(VIEWS_JOB))

    assert result.exit_code == 0, result.output
    status = assert_status_reads(cli, "--db", str(db_path))
    assert status["tables"][0]["lastDate"] == "9999-12-31"

    con = duckdb.connect(str(db_path))
    try:
        # What csload before issue 16 committed for a year-99999 view_time (run windows come
        # from the API through Python's datetime: they cannot be out of its range).
        con.execute("UPDATE views SET _date = '99999-01-01'::DATE, view_time = "
                    "'99999-01-01'::TIMESTAMP WHERE _date = '9999-12-31'")
    finally:
        con.close()
    status = assert_status_reads(cli, "--db", str(db_path))
    assert status["tables"][0]["lastDate"] == "99999-01-01"


# --- header columns -------------------------------------------------------------------------------

@pytest.mark.hostile("a CSV header of 3,000 columns (DuckDB ran out of memory, every sync "
                     "aborted)",
                     "that run fails at `max_columns`; the others load")
def test_hostile_csv_header_of_3000_columns_fails_its_run(
        simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    """Today: DuckDB out of memory, the whole sync aborted, at every sync."""
    bad = run_of(simulator, VIEWS_JOB, DAY)
    serve(simulator, bad, csv_with_header_columns(
        simulator, bad, [f"extra_{i}" for i in range(3000)]))

    result, report = sync_json(cli, "--db", str(db_path), "--job", str(VIEWS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {VIEWS_JOB}, run {bad}, part {PART}: line 1: " in message, message
    assert "max_columns" in message, message
    assert_others_exact(db_path, simulator, [VIEWS_JOB], bad)


@pytest.mark.hostile("a CSV header with 300 unknown columns (300 permanent columns were added)",
                     "that run fails at `max_unknown_columns`; the table gains no column")
def test_hostile_csv_header_of_300_unknown_columns_adds_none(
        simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    """Today: 300 permanent VARCHAR columns added to `views`."""
    bad = run_of(simulator, VIEWS_JOB, DAY)
    serve(simulator, bad, csv_with_header_columns(
        simulator, bad, [f"extra_{i}" for i in range(300)]))

    result, report = sync_json(cli, "--db", str(db_path), "--job", str(VIEWS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {VIEWS_JOB}, run {bad}, part {PART}: line 1: " in message, message
    assert "max_unknown_columns" in message, message
    assert_others_exact(db_path, simulator, [VIEWS_JOB], bad)   # no extra_* column either


@pytest.mark.hostile("a JSONL object of 3,000 unknown keys",
                     "that run fails at the caps; the others load")
def test_hostile_jsonl_object_of_3000_unknown_keys_fails_its_run(
        simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    bad = run_of(simulator, SESSIONS_JOB, DAY)
    serve(simulator, bad, jsonl_with(simulator, bad, lambda row: row.update(
        {f"extra_{i}": "x" for i in range(3000)})))

    result, report = sync_json(cli, "--db", str(db_path), "--job", str(SESSIONS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {SESSIONS_JOB}, run {bad}, part {PART}: line 1: " in message, message
    assert_others_exact(db_path, simulator, [SESSIONS_JOB], bad)


@pytest.mark.hostile("a header column name of 300 characters",
                     "that run fails at `max_column_name`, the name not repeated")
def test_hostile_header_column_name_too_long_fails_its_run(
        simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    bad = run_of(simulator, VIEWS_JOB, DAY)
    serve(simulator, bad, csv_with_header_columns(simulator, bad, ["n" * 300]))

    result, report = sync_json(cli, "--db", str(db_path), "--job", str(VIEWS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {VIEWS_JOB}, run {bad}, part {PART}: line 1: " in message, message
    assert "max_column_name" in message and "n" * 40 not in message, message
    assert_others_exact(db_path, simulator, [VIEWS_JOB], bad)


@pytest.mark.hostile("a wider export the user wants loaded",
                     "raising `[limits] max_unknown_columns` loads it with its columns")
def test_hostile_header_caps_are_configurable(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    """[limits] max_unknown_columns lets a wider export in: the run loads, its columns too."""
    bad = run_of(simulator, VIEWS_JOB, DAY)
    names = [f"extra_{i}" for i in range(300)]
    serve(simulator, bad, csv_with_header_columns(simulator, bad, names))
    wide = replace(settings, limits=Limits(max_unknown_columns=300))

    report = csload.sync(wide, db=db_path, jobs=[VIEWS_JOB])

    assert report.exit_code == 0, [r.message for r in report.failed]
    columns, _ = table_rows(db_path, "views")
    assert set(names) <= columns


# --- ids out of range -----------------------------------------------------------------------------

@pytest.mark.hostile("a negative `view_number` in a keyed row (the whole sync aborted)",
                     "that run fails with its line; the others load exactly")
def test_hostile_negative_view_number_fails_its_run(
        simulator: Simulator, cli: Callable[..., Result], db_path: Path) -> None:
    """Today: the key rule's UBIGINT cast aborts the whole sync with StoreError."""
    bad = run_of(simulator, VIEWS_JOB, DAY)
    body, line = csv_with_value(simulator, bad, "view_number", "-3")
    serve(simulator, bad, body)

    result, report = sync_json(cli, "--db", str(db_path), "--job", str(VIEWS_JOB))

    assert result.exit_code == 3, result.output
    message = failed_message(report, bad)
    assert f"job {VIEWS_JOB}, run {bad}, part {PART}: line {line}: " in message, message
    assert "view_number" in message, message
    assert_others_exact(db_path, simulator, [VIEWS_JOB], bad)


# --- runs too large -------------------------------------------------------------------------------

@pytest.mark.hostile("a run listing more parts than `max_run_parts`",
                     "that run fails alone; the one-part run loads")
def test_hostile_run_with_too_many_parts_fails_that_run(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    """[limits] max_run_parts: runs listing more parts fail; the one-part run loads."""
    jobs = [SESSIONS_JOB, VIEWS_JOB, 1119]
    runs = successful_runs(simulator, jobs)
    counts = {r: len(simulator.part_bodies(simulator.run(r).job_id, r)) for r in runs}
    cap = min(counts.values())
    assert cap < max(counts.values())
    capped = replace(settings, limits=Limits(max_run_parts=cap))

    report = csload.sync(capped, db=db_path, jobs=jobs)

    assert report.exit_code == 3
    too_many = sorted(r for r, n in counts.items() if n > cap)
    assert sorted(r.run_id for r in report.failed) == too_many
    for outcome in report.failed:
        assert f"run {outcome.run_id}: " in (outcome.message or "")
        assert "max_run_parts" in (outcome.message or ""), outcome.message
    assert_db_matches(db_path, expected_tables(
        simulator, [r for r in runs if counts[r] <= cap]))


@pytest.mark.hostile("a batch that makes DuckDB run out of memory",
                     "retried run by run: the run that fails alone is recorded failed, the others"
                     " load exactly")
def test_hostile_batch_out_of_memory_is_retried_run_by_run(
        simulator: Simulator, settings: Settings, db_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A run whose header the caps were raised for makes DuckDB run out of memory: its batch
    is retried run by run, the run that still fails alone is recorded failed, the others
    load exactly."""
    # Not the 3,000 warnings per attempt ("not a field of the job"): capturing them took
    # longer than the sync.
    caplog.set_level(logging.ERROR, logger="csload.load")
    bad = run_of(simulator, VIEWS_JOB, DAY)
    serve(simulator, bad, csv_with_header_columns(
        simulator, bad, [f"extra_{i}_{'w' * 40}" for i in range(3000)]))
    wide = replace(settings, limits=Limits(max_columns=5000, max_unknown_columns=5000))

    report = csload.sync(wide, db=db_path, jobs=[VIEWS_JOB])

    assert report.exit_code == 3
    assert [r.run_id for r in report.failed] == [bad]
    message = report.failed[0].message or ""
    assert f"job {VIEWS_JOB}, run {bad}" in message and "memory" in message, message
    assert "within csload's memory cap for this target" in message, message  # not "this machine"
    assert_others_exact(db_path, simulator, [VIEWS_JOB], bad)
