"""A colleague's job never erases data: jobs that export other fields get tables of their own.

The scenario of issue 19: the daily pageviews job is loaded; someone creates, in the same
project, a narrow job (the README's "Mobile views": session_id, view_number, url as page_url,
mobile only). A plain `csload sync` used to replace the full rows of that day with the narrow
job's rows, emptying 35 of 38 columns. Now every value the full job loaded stays, on both
targets, row by row against the simulator's truth, and the report says what each job did.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

import csload
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.config import Settings
from csload.load.duckdb import DuckDBStore
from csload.pipeline.report import SyncReport
from csload.simulator import Simulator
from csload.transfer.host import StorageHost
from csload.transfer.staged import StagedPart, StagedRun
from tests.support.syncref import (
    VIEWS_JOB,
    assert_rows_equal,
    create_job,
    create_spec,
    day,
    default_tables,
    expected_tables,
    finish_once_job,
    lake_rows,
    same_fields,
    successful_runs,
    table_rows,
)

Row = dict[str, Any]
THE_DAY = date(2026, 11, 23)


class Target:
    """A DuckDB file or a lake of Delta tables, synced and read back the same way."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / ("cs.duckdb" if kind == "db" else "lake")

    def sync(self, settings: Settings, **options: Any) -> SyncReport:
        where = {"db": self.path} if self.kind == "db" else {"parquet": self.path}
        return csload.sync(settings, **where, **options)

    def tables(self) -> set[str]:
        con = self.connect()
        try:
            # The tables (or a lake's views) holding rows of runs.
            return {r[0] for r in con.execute(
                "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = '_run_id' "
                "AND NOT starts_with(table_name, '_')").fetchall()}
        finally:
            con.close()

    def rows(self, table: str) -> list[Row]:
        read = table_rows if self.kind == "db" else lake_rows
        return read(self.path, table)[1]

    def connect(self) -> duckdb.DuckDBPyConnection:
        if self.kind == "db":
            return duckdb.connect(str(self.path), read_only=True)
        return csload.connect(parquet=str(self.path))

    def matches(self, simulator: Simulator, tables: dict[int, str] | None = None) -> None:
        """Every table holds exactly the truth: its columns and every value of every row."""
        expected = expected_tables(simulator, successful_runs(simulator), tables)
        assert self.tables() == set(expected)
        for table, (columns, rows) in expected.items():
            got = self.rows(table)
            assert set(got[0]) == columns if got else not rows, table
            assert_rows_equal(got, rows, table)


@pytest.fixture(params=["db", "lake"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return Target(request.param, tmp_path)


def mobile_views(settings: Settings, simulator: Simulator) -> int:
    """The README's narrow job, as a `once` job over one day."""
    job = create_job(settings, name="Mobile views", fmt="CSV", scope="views",
                     fields=["session_id", "view_number", ("url", "page_url")],
                     date_from=day("2026-11-23"), date_to=day("2026-11-24"), device="mobile")
    finish_once_job(simulator, job)
    return job


def daily_views(target: Target) -> list[Row]:
    return [r for r in target.rows("views") if r["_job_id"] == VIEWS_JOB]


def test_a_narrow_job_gets_its_own_table_and_erases_nothing(
        simulator: Simulator, settings: Settings, target: Target) -> None:
    target.sync(settings)
    before = target.rows("views")
    narrow = mobile_views(settings, simulator)
    narrow_run = simulator.job(narrow).once_run_id

    report = target.sync(settings)

    # Every value the full job loaded is still there, row for row.
    assert_rows_equal(target.rows("views"), before, "views")
    assert len(before) > 0
    target.matches(simulator)
    # The narrow job's rows are in a table of its own, exactly its export.
    table = f"views_job_{narrow}"
    mine = target.rows(table)
    assert len(mine) == len(simulator.truth(narrow, narrow_run)) > 0
    assert set(mine[0]) == {"session_id", "view_number", "page_url", "_job_id", "_run_id", "_date"}
    # The report says where it went and what it did.
    [placement] = [p for p in report.jobs if p.job.job_id == narrow]
    assert (placement.table, placement.how, placement.new, placement.refused) == (
        table, "own table", True, None)
    assert any(f"job {narrow} (Mobile views) -> table {table}" in w for w in report.warnings)
    [totals] = report.job_totals()
    assert (totals.job_id, totals.table, totals.runs) == (narrow, table, 1)
    assert (totals.added, totals.replaced, totals.removed) == (len(mine), 0, 0)
    # A second sync changes nothing and says nothing new.
    again = target.sync(settings)
    assert again.runs == [] and not again.warnings
    assert [p.new for p in again.jobs if p.job.job_id == narrow] == [False]


def test_a_narrow_job_after_the_main_job_moved_away_erases_nothing_it_left_behind(
        simulator: Simulator, settings: Settings, target: Target) -> None:
    """Found by QA, 2026-12-07: with the main job mapped to another table, no job of the
    ledger was in `views` any more, and a colleague's narrow job took it as a table with no
    job yet: 221 of the main job's rows kept 3 of their 38 columns."""
    target.sync(settings)
    before = target.rows("views")
    moved = {VIEWS_JOB: "pageviews"}
    target.sync(settings, tables=moved)
    simulator.advance(24 * 3600)   # the main job's next run loads into pageviews
    narrow = mobile_views(settings, simulator)

    report = target.sync(settings, tables=moved)

    assert_rows_equal(target.rows("views"), before, "views")   # every value still there
    assert len(before) > 0
    [placement] = [p for p in report.jobs if p.job.job_id == narrow]
    assert (placement.table, placement.how) == (f"views_job_{narrow}", "own table")
    run = simulator.job(narrow).once_run_id
    assert run is not None
    assert len(target.rows(f"views_job_{narrow}")) == len(simulator.truth(narrow, run)) > 0
    # status lists the table the job left, with its rows (it listed only the jobs' tables).
    where = {"db": target.path} if target.kind == "db" else {"parquet": target.path}
    shown = {t.table: t.rows for t in csload.status(**where).tables}  # type: ignore[arg-type]
    assert shown["views"] == len(before)
    assert shown["pageviews"] == len(target.rows("pageviews")) > 0


def test_a_new_database_places_the_main_job_in_the_scope_table_whatever_the_order(
        simulator: Simulator, settings: Settings, target: Target) -> None:
    # The narrow job exists before the first sync, and is synced alone first.
    narrow = mobile_views(settings, simulator)

    first = target.sync(settings, jobs=[narrow])

    assert [p.table for p in first.jobs] == [f"views_job_{narrow}"]
    target.sync(settings)
    target.matches(simulator)
    assert {r["_job_id"] for r in target.rows("views")} == {VIEWS_JOB}


@pytest.mark.parametrize("mapped", [False, True])
def test_on_a_new_database_the_main_job_keeps_its_table_from_a_wider_mobile_job_or_a_mapping(
        simulator: Simulator, settings: Settings, target: Target, mapped: bool) -> None:
    # Found by QA (2026-12-08) on a new target: a colleague's mobile-only daily job with one
    # more field took `views` (mobile rows only), or `--table N=views` gave `views` to a
    # narrow job; either way the main job went to a table of its own, for good, exit 0.
    fields = [*same_fields(simulator, VIEWS_JOB), JobField("document_width")]
    other = (mobile_views(settings, simulator) if mapped else create_spec(settings, JobSpec(
        name="mobile, plus width", format="CSV", scope="views", frequency="daily",
        device_label="mobile", fields=tuple(fields))))
    tables = {other: "views"} if mapped else {}

    report = target.sync(settings, tables=tables)

    placed = {p.job.job_id: p for p in report.jobs}
    assert (placed[VIEWS_JOB].table, placed[VIEWS_JOB].refused) == ("views", None)
    if mapped:
        assert placed[other].table == "views" and placed[other].refused is not None
        assert f'[tables] {other} = "views_job_{other}"' in placed[other].refused
    else:
        assert (placed[other].table, placed[other].refused) == (f"views_job_{other}", None)
    assert {r["_job_id"] for r in target.rows("views")} == {VIEWS_JOB}
    assert len(target.rows("views")) == sum(len(simulator.truth(VIEWS_JOB, r.run_id))
                                            for r in simulator.runs(VIEWS_JOB))


def test_a_once_job_whose_name_only_starts_like_a_backfills_is_loaded(
        simulator: Simulator, settings: Settings, target: Target) -> None:
    # Found by QA (2026-12-08): a colleague's "csload backfill check" was left to a backfill
    # that never made it, and no sync loaded it or said so.
    theirs = create_job(settings, name="csload backfill check", fmt="CSV", scope="views",
                        fields=same_fields(simulator, VIEWS_JOB), date_from=day("2026-11-23"),
                        date_to=day("2026-11-24"))
    run = finish_once_job(simulator, theirs)

    report = target.sync(settings)

    assert run in {r.run_id for r in report.loaded}
    assert {r["_run_id"] for r in target.rows("views") if r["_job_id"] == theirs} == {run}


def test_a_device_filtered_copy_of_the_main_job_shares_its_table(
        simulator: Simulator, settings: Settings, target: Target) -> None:
    target.sync(settings)
    before = {(r["session_id"], r["view_number"]): r for r in target.rows("views")}
    mobile = create_job(settings, name="Mobile pageviews", fmt="CSV", scope="views",
                        fields=same_fields(simulator, VIEWS_JOB), device="mobile",
                        date_from=day("2026-11-23"), date_to=day("2026-11-24"))
    run = finish_once_job(simulator, mobile)

    report = target.sync(settings)

    [placement] = [p for p in report.jobs if p.job.job_id == mobile]
    assert (placement.table, placement.how, placement.new) == ("views", "scope table", True)
    target.matches(simulator)
    after = target.rows("views")
    # The same keys, and every value the same as the full job's: its rows replaced the
    # full job's rows of the mobile sessions with the same values.
    assert {(r["session_id"], r["view_number"]) for r in after} == set(before)
    lineage = {"_job_id", "_run_id", "_date"}
    for row in after:
        old = before[(row["session_id"], row["view_number"])]
        assert {k: v for k, v in row.items() if k not in lineage} == \
            {k: v for k, v in old.items() if k not in lineage}
    mine = [r for r in after if r["_run_id"] == run]
    assert mine and {r["device_id"] for r in mine} <= {2, 4}
    [totals] = report.job_totals()
    assert (totals.added, totals.replaced, totals.removed) == (0, len(mine), 0)


def test_a_job_with_an_extra_field_and_a_keyless_job_get_tables_of_their_own(
        simulator: Simulator, settings: Settings, target: Target) -> None:
    extra = create_job(settings, name="views, plus width", fmt="JSONL", scope="views",
                       fields=[*same_fields(simulator, VIEWS_JOB), JobField("document_width")],
                       date_from=day("2026-11-23"), date_to=day("2026-11-24"))
    keyless = create_job(settings, name="paths", fmt="CSV", scope="views",
                         fields=["view_time", "path", "view_duration_msec"],
                         date_from=day("2026-11-22"), date_to=day("2026-11-24"))
    finish_once_job(simulator, extra)
    finish_once_job(simulator, keyless)

    report = target.sync(settings)

    tables = {p.job.job_id: p.table for p in report.jobs}
    assert tables[VIEWS_JOB] == "views"
    assert tables[extra] == f"views_job_{extra}" and tables[keyless] == f"views_job_{keyless}"
    assert default_tables(simulator) == tables
    target.matches(simulator)
    # The main table has its job's columns only, and its rows are all the daily job's.
    views = target.rows("views")
    assert "document_width" not in views[0]
    assert {r["_job_id"] for r in views} == {VIEWS_JOB}
    assert len(views) == sum(len(simulator.truth(VIEWS_JOB, r.run_id))
                             for r in simulator.runs(VIEWS_JOB))


def test_mapping_a_narrow_job_into_the_main_table_is_refused(
        simulator: Simulator, settings: Settings, target: Target) -> None:
    target.sync(settings)
    before = target.rows("views")
    narrow = mobile_views(settings, simulator)

    report = target.sync(settings, tables={narrow: "views"})

    [refused] = report.refused
    assert refused.job.job_id == narrow and refused.table == "views"
    assert refused.refused is not None and "erase" in refused.refused
    assert f'[tables] {narrow} = "views_job_{narrow}"' in refused.refused
    assert report.runs == [] and report.exit_code == 3
    assert_rows_equal(target.rows("views"), before, "views")
    # Mapped to a table of its own, it loads.
    mapped = target.sync(settings, tables={narrow: "mobile_views"})
    assert [(r.job_id, r.table) for r in mapped.loaded] == [(narrow, "mobile_views")]
    target.matches(simulator, tables={narrow: "mobile_views"})


def test_a_narrow_job_an_older_csload_loaded_into_the_main_table_is_refused_until_moved(
        simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    # An older csload put every job of a scope into the scope's table: reproduce such a
    # database by loading the narrow job's run into `views` through the store.
    db = tmp_path / "cs.duckdb"
    csload.sync(settings, db=db, jobs=[VIEWS_JOB])
    narrow = mobile_views(settings, simulator)
    run_id = simulator.job(narrow).once_run_id
    assert run_id is not None
    legacy_load(settings, db, narrow, run_id)

    report = csload.sync(settings, db=db)

    [refused] = report.refused
    assert refused.job.job_id == narrow and refused.how == "loaded before"
    # Its one run is loaded: the refusal keeps nothing out of the target, and every sync
    # exited 3 all the same (a suspended job an older csload loaded: found on upgrading).
    assert refused.unloaded == 0 and "no run of it is left to load" in refused.note
    assert report.exit_code == 0
    # A new run of it is kept out: the sync is incomplete.
    simulator.rerun(narrow, THE_DAY)
    report = csload.sync(settings, db=db)
    [refused] = report.refused
    assert refused.unloaded == 1 and "(1 run not loaded)" in refused.note
    assert report.exit_code == 3
    # Moved by hand: its next runs load into the new table; the warning says its old rows
    # stay where they were.
    moved = csload.sync(settings, db=db, tables={narrow: "mobile_views"})
    [placement] = [p for p in moved.jobs if p.job.job_id == narrow]
    assert placement.moved_from == "views" and placement.refused is None
    assert any(f"job {narrow}" in line and "moved from table views, where its earlier rows "
               "stay" in line for line in moved.warnings), moved.warnings
    assert [r.table for r in moved.loaded] == ["mobile_views"]
    assert table_rows(db, "mobile_views")[1]


def legacy_load(settings: Settings, db: Path, job_id: int, run_id: int) -> None:
    """Load one run of a job into `views` the way csload did before tables were per field
    set: the store itself has no placement rule."""
    import anyio

    from csload.api.client import ExportClient

    async def fetch() -> tuple[Any, Any, list[StagedPart]]:
        async with ExportClient(settings) as client:
            job = await client.get_job(job_id)
            run = await client.get_run(job_id, run_id)
            parts = []
            for part in run.parts or ():
                path = db.parent / f"legacy-{run_id}-{part.part_id}"
                await StorageHost(client).download_part(part, path, job_id=job_id, run_id=run_id)
                parts.append(StagedPart(part.part_id, path, path.stat().st_size))
            return job, run, parts

    job, run, parts = anyio.run(fetch)
    with DuckDBStore.open(db) as store:
        [outcome] = store.apply([StagedRun(job, run, tuple(parts), table="views")])
    assert outcome.status == "loaded"

