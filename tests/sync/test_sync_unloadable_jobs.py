"""A job whose columns csload cannot load is refused before its runs are downloaded.

Found using csload on a project where someone had made jobs in the console or through the
API: an alias `_job_id` (a name csload keeps for its lineage), two fields whose names differ
only in case (`session_id` and `SESSION_ID`: one column in DuckDB), an alias `Date` in a lake
(whose partition column is `date`). Each sync downloaded such a job's runs, failed each one
with "give the field another alias", and said "the next csload sync tries them again": it did,
downloading them again, forever, and a job cannot be given other aliases (the API changes no
job once made). Worse, such a job wider than the main job took the scope's table on a new
target, and the main job went to a table of its own. Now the placement refuses it (the sync
says why and what to do, exits 3), nothing of it is downloaded, and the others load as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import csload
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.config import Settings
from csload.simulator import Simulator
from tests.support.syncref import (
    VIEWS_JOB,
    create_job,
    create_spec,
    day,
    finish_once_job,
    same_fields,
    table_rows,
)

THE_DAY, NEXT_DAY = day("2026-11-23"), day("2026-11-24")


def once_job(settings: Settings, simulator: Simulator, name: str,
             fields: list[str | tuple[str, str]]) -> int:
    job = create_job(settings, name=name, fmt="CSV", scope="views", fields=fields,
                     date_from=THE_DAY, date_to=NEXT_DAY)
    finish_once_job(simulator, job)
    return job


def sync(settings: Settings, tmp_path: Path, kind: str, **options: object) -> csload.SyncReport:
    where = {"db": tmp_path / "cs.duckdb"} if kind == "db" else {"parquet": tmp_path / "lake"}
    return csload.sync(settings, **where, **options)   # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["db", "lake"])
def test_a_job_with_a_reserved_or_doubled_column_is_refused_and_never_downloaded(
        simulator: Simulator, settings: Settings, tmp_path: Path, kind: str) -> None:
    reserved = once_job(settings, simulator, "reserved alias",
                        ["session_id", "view_number", ("url", "_job_id")])
    doubled = once_job(settings, simulator, "alias in capitals",
                       ["session_id", "view_number", ("user_id", "SESSION_ID")])

    report = sync(settings, tmp_path, kind)

    refused = {p.job.job_id: p.refused or "" for p in report.refused}
    assert set(refused) == {reserved, doubled}
    assert "column '_job_id' starts with '_', which csload keeps for its own columns" \
        in refused[reserved]
    assert "columns 'session_id' and 'SESSION_ID' both become 'session_id'" in refused[doubled]
    assert all("a job cannot be changed: create one with other aliases" in why
               for why in refused.values())
    # Nothing of theirs was tried; the other jobs loaded whole.
    assert {r.job_id for r in report.runs} >= {VIEWS_JOB}
    assert not {r.job_id for r in report.runs} & {reserved, doubled}
    assert not report.failed and report.exit_code == 3

    # The next sync says it again and downloads nothing (it used to fetch and fail them
    # at each sync).
    storage_before = simulator.stats.storage_requests
    again = sync(settings, tmp_path, kind)
    assert {p.job.job_id for p in again.refused} == {reserved, doubled}
    assert again.runs == [] and again.exit_code == 3
    assert simulator.stats.storage_requests == storage_before


def test_a_column_named_date_is_refused_in_a_lake_and_loads_into_a_database(
        simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    dated = once_job(settings, simulator, "url as Date",
                     ["session_id", "view_number", ("url", "Date")])

    lake = sync(settings, tmp_path, "lake", jobs=[dated])
    db = sync(settings, tmp_path, "db", jobs=[dated])

    [placement] = lake.refused
    assert placement.job.job_id == dated and lake.runs == []
    assert "column 'Date' (named 'date') is the lake's partition column" in (
        placement.refused or "")
    assert db.refused == [] and [r.job_id for r in db.loaded] == [dated]
    columns, rows = table_rows(tmp_path / "cs.duckdb", f"views_job_{dated}")
    assert "date" in columns and len(rows) == len(simulator.truth(
        dated, simulator.job(dated).once_run_id or 0)) > 0


@pytest.mark.parametrize("kind", ["db", "lake"])
def test_a_wider_job_csload_cannot_load_does_not_take_the_scope_table(
        simulator: Simulator, settings: Settings, tmp_path: Path, kind: str) -> None:
    # A daily job with every field of the main job and one more, under a reserved alias:
    # placed first (recurring, widest), it used to become the columns of table `views`, and
    # the main job went to `views_job_1121`.
    wider = JobSpec(name="views and width", format="CSV", scope="views", frequency="daily",
                    fields=(*same_fields(simulator, VIEWS_JOB),
                            JobField("document_width", alias_name="_width")))
    job = create_spec(settings, wider)

    report = sync(settings, tmp_path, kind)

    tables = {p.job.job_id: p.table for p in report.jobs}
    assert tables[VIEWS_JOB] == "views"
    assert [p.job.job_id for p in report.refused] == [job]
    assert {r.table for r in report.loaded if r.job_id == VIEWS_JOB} == {"views"}


def test_csload_refuses_to_create_a_job_it_could_not_load(
        simulator: Simulator, settings: Settings) -> None:
    spec = JobSpec(name="bad", format="CSV", scope="views", frequency="daily",
                   fields=(JobField("session_id"), JobField("view_number"),
                           JobField("url", alias_name="_job_id"),
                           JobField("user_id", alias_name="Session ID")))
    before = len(simulator.jobs)

    problems = csload.check_job(spec, settings=settings)
    with pytest.raises(csload.InvalidJobSpec):
        csload.create_job(spec, settings=settings)

    assert [p.detail for p in problems] == [
        "field 3 would be column '_job_id' in csload's tables ('_job_id'): names starting "
        "with '_' are csload's own",
        "fields 1 and 4 would both be column 'session_id' in csload's tables (names "
        "lowercased, every other character than a-z, 0-9 and _ as '_')"]
    assert len(simulator.jobs) == before
    # The API itself would have taken it: the rule is csload's.
    assert create_spec(settings, spec) > 0
