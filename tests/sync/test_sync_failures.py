"""What goes wrong during a sync: a part that does not parse, HTTP faults, expiring URLs."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from click.testing import Result

import csload
from csload.config import Limits, Settings
from csload.pipeline.report import EventKind, SyncEvent
from csload.pipeline.sync import staging_dir
from csload.simulator import Simulator
from tests.support.syncref import (
    SESSIONS_JOB,
    VIEWS_JOB,
    assert_db_matches,
    expected_tables,
    run_of,
    successful_runs,
)


def single_line_record_after_a_multiline_one(body: bytes) -> int:
    """A physical line (1-based) that starts a one-line CSV record after a record that spans
    several lines, so that the record number and the line number differ."""
    reader = csv.reader(io.StringIO(gzip.decompress(body).decode(), newline=""))
    previous = 0
    seen_multiline = False
    for _record in reader:
        first, last = previous + 1, reader.line_num
        previous = last
        if last > first:
            seen_multiline = True
        elif seen_multiline:
            return first
    raise AssertionError("no CSV record spans several lines in this part")


@pytest.mark.parametrize("fmt", ["JSONL", "CSV"])
def test_a_part_that_does_not_parse_fails_its_run_alone(
    simulator: Simulator, cli: Callable[..., Result], db_path: Path, fmt: str
) -> None:
    job = SESSIONS_JOB if fmt == "JSONL" else VIEWS_JOB
    bad = run_of(simulator, job, "2026-11-23")
    bodies = simulator.part_bodies(job, bad, compressed=True)
    assert len(bodies) >= 2
    if fmt == "CSV":
        line, text = single_line_record_after_a_multiline_one(bodies[1]), "broken,row"
    else:
        line, text = 3, '{"session_id": 17, "visitor_id": '
    simulator.faults.corrupt_part = (bad, 2)
    simulator.faults.corrupt_line = line
    simulator.faults.corrupt_text = text

    result = cli("sync", "--db", str(db_path))

    assert result.exit_code == 3, result.output
    where = f"job {job}, run {bad}, part 2: line {line}: "
    # One line for the job's failed runs: its days, and the first one's reason.
    assert re.search(rf'failed: job {job} "[^"]+": 1 run, days 2026-11-23 '
                     rf"\(run {bad}: part 2: line {line}: ", result.stdout), result.stdout
    others = [r for r in successful_runs(simulator) if r != bad]
    assert_db_matches(db_path, expected_tables(simulator, others))
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        status, message = con.execute(
            "SELECT status, message FROM _csload.runs WHERE run_id = ?", [bad]).fetchone() or ()
    finally:
        con.close()
    assert status == "failed" and message.startswith(where)

    simulator.faults.corrupt_part = None
    again = cli("sync", "--db", str(db_path))

    assert again.exit_code == 0, again.output
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))


def test_http_faults_during_a_sync_still_give_exact_tables(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    faults = simulator.faults
    # Moderate random rates, plus one of each for sure (the random ones depend on the order
    # of requests, which concurrency makes vary).
    faults.storage_503_rate = faults.storage_cut_rate = faults.storage_truncate_rate = 0.1
    faults.api_429_rate = faults.api_5xx_rate = 0.1
    faults.storage_503_next = faults.storage_cut_next = faults.storage_truncate_next = 1
    faults.api_fail_next = 2
    # A plain 500 twice from the token endpoint means "wrong credentials" (the real service's
    # habit, contract section 2): keep the token endpoint out of the random faults.
    faults.api_faults_on_token = False

    report = csload.sync(settings, db=db_path)

    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    seen = simulator.stats.faults
    assert seen["slowdown"] >= 1 and seen["cut"] >= 1 and seen["truncate"] >= 1
    assert seen["api_503"] >= 2


def test_a_part_truncated_in_storage_is_found_at_load_and_downloaded_again(
    simulator: Simulator, settings: Settings, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Downloads are not inflated before the load (csload.transfer.stage): DuckDB's reader finds
    # the truncated stream, and only that part is downloaded again, verified this time.
    target = run_of(simulator, VIEWS_JOB, "2026-11-23")
    parts = len(simulator.part_bodies(VIEWS_JOB, target))
    assert parts >= 2
    faults = simulator.faults
    faults.storage_fault_part, faults.storage_fault_part_kind = (target, 2), "truncate"
    faults.storage_fault_part_next = 1
    everything = successful_runs(simulator)
    all_parts = sum(len(simulator.part_bodies(simulator.run(r).job_id, r)) for r in everything)

    report = csload.sync(settings, db=db_path)

    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert sorted(r.run_id for r in report.loaded) == sorted(everything)
    assert_db_matches(db_path, expected_tables(simulator, everything))
    assert simulator.stats.faults["truncate"] == 1
    # Every part once, and the truncated one once more.
    assert simulator.stats.storage_requests == all_parts + 1
    assert any(f"job {VIEWS_JOB}, run {target}, part 2: the gzip stream ends early" in m
               and "downloading it again" in m for m in caplog.messages)
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        statuses = dict(con.execute("SELECT run_id, status FROM _csload.runs").fetchall())
    finally:
        con.close()
    assert set(statuses.values()) - {"source_failed"} == {"loaded"}


def test_urls_that_expire_during_the_sync_are_fetched_again(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    simulator.config.url_lifetime = 60
    parts = {r: len(simulator.part_bodies(simulator.run(r).job_id, r))
             for r in successful_runs(simulator)}
    advanced: list[int] = []

    def on_event(event: SyncEvent) -> None:
        # After the first part of a run with several parts, and once more later: every URL
        # handed out so far expires. With one download at a time, the run's next part is
        # still waiting with its old URL, so a 403 is certain.
        if (event.kind is EventKind.PART_DOWNLOADED and event.run_id is not None
                and parts[event.run_id] > 1 and event.run_id not in advanced
                and len(advanced) < 2):
            advanced.append(event.run_id)
            simulator.advance(61)

    one_at_a_time = replace(settings, limits=Limits(download_concurrency=1))
    report = csload.sync(one_at_a_time, db=db_path, on_event=on_event)

    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert len(advanced) == 2
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    assert simulator.stats.statuses_by_kind[("storage", 403)] >= 2
    assert simulator.stats.requests["get_run"] >= len(parts) + 2


def test_a_part_that_cannot_be_downloaded_fails_its_run_alone(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    # One run at a time, one download at a time, two attempts per part: the first run of the
    # plan (table `sessions` first, its oldest run first) meets both 503s.
    strict = replace(settings, limits=Limits(download_concurrency=1, max_staged_runs=1),
                     retry=replace(settings.retry, max_attempts=2))
    first = [run_of(simulator, SESSIONS_JOB, "2026-11-22")]
    simulator.faults.storage_503_next = 2

    report = csload.sync(strict, db=db_path)

    assert report.exit_code == 3
    assert [r.run_id for r in report.failed] == first
    message = report.failed[0].message or ""
    assert f"job {SESSIONS_JOB}, run {first[0]}, part 1" in message and "503" in message
    others = [r for r in successful_runs(simulator) if r not in first]
    assert sorted(r.run_id for r in report.loaded) == sorted(others)
    assert_db_matches(db_path, expected_tables(simulator, others))
    assert not staging_dir(db_path).exists()

    again = csload.sync(strict, db=db_path)

    assert [r.run_id for r in again.loaded] == first and again.exit_code == 0
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
