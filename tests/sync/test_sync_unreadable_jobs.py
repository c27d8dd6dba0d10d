"""A job whose definition the job list does not give whole is refused alone (csload.load.
placement), on both targets.

Found by QA on 2026-12-07: one job with a field csload could not read (`customVarPosition` 21)
failed every sync of the project, for every job, until the API or csload changed. Now that job
is refused (the sync says which job, key and value, and exits 3) and the others load. Its table
is held for it: a job the target loaded keeps its table's columns (the ledger's copy), so that
a colleague's narrower job cannot take the table meanwhile; a new one keeps its scope's table
free until it can be read, so that which table each job gets does not depend on the hiccup.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import csload
from csload.config import Settings
from csload.simulator import SimConfig
from tests.support.syncref import (
    SESSIONS_JOB,
    VIEWS_JOB,
    create_job,
    day,
    finish_once_job,
    lake_rows,
    successful_runs,
    table_rows,
)
from tests.support.tampered import Tampered, set_position

NARROW = ["session_id", "view_number", "url"]


@pytest.fixture
def simulator(sim_config: SimConfig) -> Tampered:
    return Tampered(sim_config)


def sync(settings: Settings, tmp_path: Path, kind: str) -> csload.SyncReport:
    where = {"db": tmp_path / "cs.duckdb"} if kind == "db" else {"parquet": tmp_path / "lake"}
    return csload.sync(settings, **where)   # type: ignore[arg-type]


def rows(tmp_path: Path, kind: str, table: str) -> list[dict[str, object]]:
    read = table_rows if kind == "db" else lake_rows
    return read(tmp_path / ("cs.duckdb" if kind == "db" else "lake"), table)[1]


def per_run(found: list[dict[str, object]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for row in found:
        run = int(row["_run_id"])   # type: ignore[call-overload]
        counts[run] = counts.get(run, 0) + 1
    return counts


def truth(simulator: Tampered, job_id: int) -> dict[int, int]:
    return {run: len(simulator.truth(job_id, run)) for run in successful_runs(simulator, [job_id])}


def narrow_job(settings: Settings, simulator: Tampered) -> int:
    job = create_job(settings, name="my narrow look", fmt="CSV", scope="views", fields=NARROW,
                     date_from=day("2026-11-23"), date_to=day("2026-11-24"))
    finish_once_job(simulator, job)
    return job


@pytest.mark.parametrize("kind", ["db", "lake"])
def test_a_loaded_job_that_cannot_be_read_is_refused_and_keeps_its_table(
        simulator: Tampered, settings: Settings, tmp_path: Path, kind: str) -> None:
    assert sync(settings, tmp_path, kind).exit_code == 0
    views_before = rows(tmp_path, kind, "views")
    simulator.advance_days(1)
    narrow = narrow_job(settings, simulator)
    simulator.edits[simulator.api_path("/exports")] = set_position(21)(VIEWS_JOB)

    report = sync(settings, tmp_path, kind)

    assert report.exit_code == 3
    placed = {p.job.job_id: p for p in report.jobs}
    assert [p.job.job_id for p in report.refused] == [VIEWS_JOB]
    assert placed[VIEWS_JOB].table == "views" and placed[VIEWS_JOB].unloaded == 1
    assert f"job {VIEWS_JOB}: customVarPosition 21 is out of range" in (
        placed[VIEWS_JOB].refused or "")
    # The narrow job did not take table views: the ledger's copy of the main job holds it.
    assert placed[narrow].table == f"views_job_{narrow}" and placed[narrow].refused is None
    assert rows(tmp_path, kind, "views") == views_before
    assert per_run(rows(tmp_path, kind, f"views_job_{narrow}")) == truth(simulator, narrow)
    assert per_run(rows(tmp_path, kind, "sessions")) == truth(simulator, SESSIONS_JOB)

    simulator.edits.clear()
    again = sync(settings, tmp_path, kind)

    assert again.exit_code == 0 and again.refused == []
    assert per_run(rows(tmp_path, kind, "views")) == truth(simulator, VIEWS_JOB)


@pytest.mark.parametrize("kind", ["db", "lake"])
def test_a_new_job_that_cannot_be_read_keeps_its_scope_table_until_it_can(
        simulator: Tampered, settings: Settings, tmp_path: Path, kind: str) -> None:
    narrow = narrow_job(settings, simulator)
    simulator.edits[simulator.api_path("/exports")] = set_position(21)(VIEWS_JOB)

    report = sync(settings, tmp_path, kind)

    assert report.exit_code == 3
    refused = {p.job.job_id: p.refused or "" for p in report.refused}
    assert set(refused) == {VIEWS_JOB, narrow}
    assert refused[narrow].startswith(f"it waits for job {VIEWS_JOB}, whose definition cannot "
                                      "be read")
    assert SESSIONS_JOB in {r.job_id for r in report.loaded}
    assert not {r.job_id for r in report.runs} & {VIEWS_JOB, narrow}
    assert per_run(rows(tmp_path, kind, "sessions")) == truth(simulator, SESSIONS_JOB)

    simulator.edits.clear()
    again = sync(settings, tmp_path, kind)

    # As a sync that never met the unreadable list places them: the main job in views.
    assert again.exit_code == 0
    tables = {p.job.job_id: p.table for p in again.jobs}
    assert (tables[VIEWS_JOB], tables[narrow]) == ("views", f"views_job_{narrow}")
    assert per_run(rows(tmp_path, kind, "views")) == truth(simulator, VIEWS_JOB)
    assert per_run(rows(tmp_path, kind, f"views_job_{narrow}")) == truth(simulator, narrow)
