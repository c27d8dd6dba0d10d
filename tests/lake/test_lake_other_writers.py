"""Other writers' commits to a lake's tables (docs/lake.md, "Writing to the tables";
csload.lake.adopt), locally and on the moto S3 server.

A lake's tables are Delta tables, and users write them with other engines: a DELETE of a
visitor's rows (a GDPR request), an OPTIMIZE or Z-ORDER. Until 2026-12-07 the next sync took
any such commit for a crashed sync's and undid it ("undoing table views's commits ..., which a
crashed sync made"): the deleted rows came back. Now a commit without csload's txid is kept
when the table keeps csload's shape, a change of shape is refused with what to do, and only
csload's own unrecorded commits are undone. The simulator's runs are served over real HTTP and
applied with `ParquetStore`, as in test_lake_sync.py; the other writer is deltalake.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from deltalake import CommitProperties, DeltaTable, TableFeatures, write_deltalake
from deltalake.schema import ArrayType, Field, PrimitiveType, Schema, StructType

from csload.config import Settings
from csload.errors import LakeConflict, StoreError
from csload.lake import lake_files
from csload.lake.adopt import WRITABLE_FEATURES, refuse_unwritable
from csload.lake.delta import TXID_KEY, commit_files, storage_options
from csload.lake.fs import LakeFS
from csload.lake.layout import new_txid
from csload.simulator import Simulator
from tests.support.hostile_lake import Crafted
from tests.support.lakeref import Row, assert_rows_equal, expected, stage_runs
from tests.support.lakeutil import Lake

RERUN_DAY = date(2026, 11, 23)


async def load_all(lake: Lake, settings: Settings, folder: Path
                   ) -> tuple[list[int], dict[str, int]]:
    """Every run of the simulator applied to the lake: their ids, and each scope's daily job."""
    folder.mkdir(exist_ok=True)
    staged = await stage_runs(settings, folder)
    with lake.open() as store:
        assert {o.status for o in store.apply(staged)} == {"loaded"}
    daily: dict[str, int] = {}   # the job with the most runs, of each scope
    for (scope, job_id), _ in Counter((s.job.scope, s.job.job_id) for s in staged).most_common():
        daily.setdefault(scope, job_id)
    return [s.run.run_id for s in staged], daily


def versions(lake: Lake) -> dict[str, int]:
    return {t: lake.delta(t).version() for t in ("views", "sessions")}


def recorded(lake: Lake) -> dict[str, int]:
    state = lake.snapshot().state
    return {t: state.tables[t].version for t in ("views", "sessions")}


def assert_holds(lake: Lake, views: list[Row], sessions: list[Row]) -> None:
    """Through csload, through a Delta reader of the latest versions, in `status` (its rows
    are the sums of its counts per run), and in the files `lake_files` gives a Parquet
    reader."""
    assert_rows_equal(lake.rows("views"), views, "views")
    assert_rows_equal(lake.rows("sessions"), sessions, "sessions")
    for table, rows in (("views", views), ("sessions", sessions)):
        assert lake.listed(table, "SELECT count(*) FROM t") == [(len(rows),)]
        files = lake_files(lake.root, storage_options=lake.options, env={})[table]
        dataset = pads.dataset([f.removeprefix("s3://") for f in files],
                               filesystem=lake.arrow_fs(), format="parquet")
        assert dataset.count_rows() == len(rows)
    status = {t.table: t.rows for t in lake.status().tables}
    assert (status["views"], status["sessions"]) == (len(views), len(sessions))


def refused(lake: Lake) -> str:
    with pytest.raises(StoreError) as info, lake.open():
        pass
    return str(info.value)


async def test_another_writers_delete_and_z_order_are_kept_and_a_rerun_loads_over_them(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    run_ids, daily = await load_all(lake, settings, tmp_path / "parts")
    truth = expected(simulator, run_ids)
    # A GDPR request's delete: a visitor's session on the day re-run below, one on another day
    victims = {next(r["session_id"] for r in truth["views"] if (r["_date"] == RERUN_DAY) == on)
               for on in (True, False)}
    lake.delta("views").delete(f"session_id IN ({', '.join(map(str, sorted(victims)))})")
    lake.delta("sessions").optimize.z_order(["session_id"])   # every file rewritten
    after_others = versions(lake)
    assert recorded(lake) != after_others
    views = [r for r in truth["views"] if r["session_id"] not in victims]
    assert len(views) < len(truth["views"])
    # Readers follow the commits before any sync records them: the deleted rows are gone
    # through csload.connect, status and lake_files too, as in a Delta reader
    assert_holds(lake, views, truth["sessions"])
    assert recorded(lake) != after_others   # reading changed nothing

    with caplog.at_level(logging.WARNING, "csload.lake"), lake.open():
        pass
    for table in ("views", "sessions"):
        assert f"kept the commits of table {table} that csload did not make" in caplog.text
    assert "undoing" not in caplog.text
    assert versions(lake) == after_others == recorded(lake)   # nothing undone; recorded
    assert_holds(lake, views, truth["sessions"])

    # Re-runs of a day whose files the other writer rewrote (both tables): each replaces that
    # day's rows with its own (the victim's too, if the new run has them); the other day keeps
    # the delete.
    reruns = [simulator.rerun(daily[scope], RERUN_DAY) for scope in ("views", "sessions")]
    with lake.open() as store:
        outcomes = store.apply(await stage_runs(settings, tmp_path / "parts", reruns))
    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    truth = expected(simulator, [*run_ids, *reruns])
    views = [r for r in truth["views"]
             if r["session_id"] not in victims or r["_run_id"] in reruns]
    assert len(views) < len(truth["views"])   # the delete stays on the other days
    assert_holds(lake, views, truth["sessions"])


async def test_rows_another_writer_added_without_a_run_are_kept_whole_by_a_rerun_of_their_day(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    """docs/lake.md: rows you add without a `_run_id` are kept and counted for no run, as in
    a DuckDB target. Until 2026-12-07 a re-run of their day failed every sync (TypeError at
    the count per run); and the day a re-run replaces is read by its keys only, so such a
    row was published with its other columns NULL."""
    run_ids, daily = await load_all(lake, settings, tmp_path / "parts")
    table = lake.delta("views")
    mine = table.to_pyarrow_table(filters=[("date", "=", RERUN_DAY)]).slice(0, 1)
    for column, value in (("_run_id", None), ("_job_id", None), ("page_url", "mine")):
        index = mine.schema.get_field_index(column)
        mine = mine.set_column(index, column, pa.array([value], mine.schema.field(index).type))
    write_deltalake(table, mine, mode="append")
    columns = set(lake.rows("views")[0])   # the table's columns, as csload.connect gives them
    rerun = simulator.rerun(daily["views"], RERUN_DAY)

    with lake.open() as store:
        [outcome] = store.apply(await stage_runs(settings, tmp_path / "parts", [rerun]))

    assert outcome.status == "loaded"
    truth = expected(simulator, [*run_ids, rerun])
    rows = lake.rows("views")
    theirs = [r for r in rows if r["_run_id"] is None]
    assert_rows_equal([r for r in rows if r["_run_id"] is not None], truth["views"], "views")
    [kept] = theirs
    assert kept["page_url"] == "mine" and kept["_date"] == RERUN_DAY
    assert set(kept) == columns and sum(v is not None for v in kept.values()) > 5
    assert lake.listed("views", "SELECT count(*) FROM t") == [(len(truth["views"]) + 1,)]
    with lake.open() as store:   # and the next sync has nothing to fix
        assert store.apply([]) == []


def one_row_with_a_new_column(lake: Lake) -> pa.Table:
    data = lake.delta("views").to_pyarrow_table().slice(0, 1)
    return data.append_column("note", pa.array(["mine"]))


@pytest.mark.parametrize("change", ["a new column", "deletion vectors"])
async def test_another_writers_change_of_a_tables_shape_is_refused_and_not_undone(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, change: str) -> None:
    run_ids, daily = await load_all(lake, settings, tmp_path / "parts")
    truth = expected(simulator, run_ids)
    before = recorded(lake)["views"]
    table = lake.delta("views")
    if change == "a new column":
        write_deltalake(table, one_row_with_a_new_column(lake), mode="append",
                        schema_mode="merge")
        words = ["did not make", "changed its columns (note)", f"restore({before})"]
        sync_words = words
    else:   # readers must then apply deletion vectors: csload reads the files itself
        table.alter.add_feature(TableFeatures.DeletionVectors,
                                allow_protocol_versions_increase=True)
        # A restore keeps the protocol: the way out is to drop the feature (until 2026-12-07
        # the refusal said nothing of it, and every reader failed on the whole lake).
        words = ["reader version 3", "deletionVectors", "plain Parquet",
                 "Restoring an older version does not lower a table's protocol",
                 "DROP FEATURE"]
        # the sync meets the writer feature first (csload.lake.adopt.refuse_unwritable)
        sync_words = ["writer features", "deletionVectors", "DROP FEATURE"]
    theirs = lake.delta("views").version()

    # readers through csload read the recorded version, whole, and say why
    with caplog.at_level(logging.WARNING, "csload.lake"):
        assert_rows_equal(lake.rows("views"), truth["views"], "views")
        status = {t.table: t.rows for t in lake.status().tables}
    assert status["views"] == len(truth["views"])
    for word in ["table views", *words, f"Until then csload reads the table at version "
                 f"{before}"]:
        assert word in caplog.text, caplog.text

    message = refused(lake)
    for word in [lake.root, "table views", *sync_words]:
        assert word in message, message
    assert lake.delta("views").version() == theirs   # their change is still there
    if change == "a new column":
        lake.delta("views").restore(before)   # what the message says to do
        rerun = simulator.rerun(daily["views"], RERUN_DAY)
        with lake.open() as store:
            [outcome] = store.apply(await stage_runs(settings, tmp_path / "parts", [rerun]))
        assert outcome.status == "loaded"
        truth = expected(simulator, [*run_ids, rerun])
        assert_holds(lake, truth["views"], truth["sessions"])


@pytest.mark.parametrize("change", ["row tracking", "append-only", "check constraint",
                                    "writable features"])
async def test_a_table_another_writer_made_unwritable_is_refused_before_the_sync_works(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path,
        change: str) -> None:
    """Databricks turns on writer features that deltalake does not write (row tracking, liquid
    clustering's domain metadata); a user may make a table append-only or add a CHECK
    constraint (which csload's commits would not check). Until 2026-12-07 the
    sync did the batch's work, then failed at the commit calling it "another process committed
    to the lake ... the next sync loads it", and so did every later sync. Now the open refuses
    such a table saying what to do; the writer features deltalake writes are kept (the list
    csload.lake.adopt.WRITABLE_FEATURES is checked here against the deltalake installed: a
    re-run of a day commits over all of them)."""
    run_ids, daily = await load_all(lake, settings, tmp_path / "parts")
    table = lake.delta("views")
    if change == "row tracking":
        table.alter.add_feature(TableFeatures.RowTracking, allow_protocol_versions_increase=True)
        words = ["writer features", "rowTracking", "DROP FEATURE"]
    elif change == "append-only":
        table.alter.set_table_properties({"delta.appendOnly": "true"})
        words = ["delta.appendOnly = true", "'delta.appendOnly' = 'false'"]
    elif change == "check constraint":
        # csload commits files it wrote itself, which no Delta writer checks: a run's rows
        # that break the constraint used to be committed without a word (found 2026-12-07)
        table.alter.add_constraint({"no_future": "_date <= '2099-01-01'"})
        words = ["CHECK constraints ('no_future')", "drop_constraint(NAME)"]
    else:   # every writer feature csload keeps, at once
        features = [getattr(TableFeatures, name[0].upper() + name[1:])
                    for name in sorted(WRITABLE_FEATURES)]
        table.alter.add_feature(features, allow_protocol_versions_increase=True)
        assert set(lake.delta("views").protocol().writer_features or ()) == WRITABLE_FEATURES
        words = []
    theirs = lake.delta("views").version()
    rerun = simulator.rerun(daily["views"], RERUN_DAY)   # replaces a day: removes files
    staged = await stage_runs(settings, tmp_path / "parts", [rerun])

    if not words:   # a writer feature deltalake writes: the sync goes on
        with lake.open() as store:
            [outcome] = store.apply(staged)
        assert outcome.status == "loaded"
        truth = expected(simulator, [*run_ids, rerun])
        assert_holds(lake, truth["views"], truth["sessions"])
        return
    message = refused(lake)
    for word in [lake.root, "table views", "cannot commit to it", *words]:
        assert word in message, message
    assert lake.delta("views").version() == theirs   # nothing undone nor written
    if change == "check constraint":
        return   # deltalake's commit of files checks no constraint: the open is the guard

    # A commit that meets such a table all the same (it changed after the sync opened the
    # lake): a clear error, not a conflict that the next sync would "load"
    fs = lake.fs()
    with pytest.raises(StoreError) as info:
        commit_files(fs, "views", lake.delta("views"), [], lake.delta("views").schema().to_arrow(),
                     replace={"2026-11-23": lake.snapshot().tables["views"].files["2026-11-23"]},
                     txn=99, txid=new_txid(), configuration={})
    assert not isinstance(info.value, LakeConflict)
    assert "another writer changed the table so that csload cannot write it" in str(info.value)


def csloads(txid: str | None = None) -> dict[str, Any]:
    """Commit properties that make a commit look like a sync's (its txid in commit info)."""
    return {"commit_properties": CommitProperties(custom_metadata={TXID_KEY: txid or new_txid()})}


@pytest.mark.parametrize("then", ["nothing", "another writer's delete"])
async def test_a_stopped_syncs_commit_is_undone_unless_another_writer_committed_after_it(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, then: str) -> None:
    run_ids, _ = await load_all(lake, settings, tmp_path / "parts")
    truth = expected(simulator, run_ids)
    before = recorded(lake)["views"]
    lake.delta("views").delete("view_number = 1", **csloads())   # a sync killed before its
    # ledger's commit: readers through csload see whole batches, so the recorded version
    assert_rows_equal(lake.rows("views"), truth["views"], "views")
    if then == "another writer's delete":
        lake.delta("views").delete("view_number = 2")
        with caplog.at_level(logging.WARNING, "csload.lake"):
            assert_rows_equal(lake.rows("views"), truth["views"], "views")
        assert "stopped before recording it" in caplog.text
        assert f"Until then csload reads the table at version {before}" in caplog.text
        caplog.clear()
        theirs = lake.delta("views").version()
        message = refused(lake)
        for word in ["stopped before recording it", f"version {before + 1}", "did not make",
                     f"version {before + 2}", f"restore({before})"]:
            assert word in message, message
        assert lake.delta("views").version() == theirs
        lake.delta("views").restore(before)   # what the message says to do

    with caplog.at_level(logging.WARNING, "csload.lake"), lake.open():
        pass
    assert ("which a crashed sync made" in caplog.text) == (then == "nothing")
    assert_holds(lake, truth["views"], truth["sessions"])


def test_a_folder_holding_another_tools_table_is_refused_before_anything_is_written(
        lake: Lake) -> None:
    """`csload sync --parquet` given a folder of the user's own Delta tables: before
    2026-12-07 the sync wrote its ledger table there, then failed calling the table "damaged
    or tampered with"; the next would have removed a table whose files had csload's names."""
    fs = lake.fs()
    theirs = pa.table({"a": [1, 2], "date": [date(2026, 12, 1), date(2026, 12, 2)]})
    write_deltalake(fs.uri("views"), theirs, partition_by=["date"],
                    storage_options=storage_options(fs))
    before = sorted(lake.files())

    message = refused(lake)
    for word in [lake.root, "folder views", "csload did not make", "version 0 ('WRITE')",
                 "a folder of its own"]:
        assert word in message, message
    assert sorted(lake.files()) == before   # no ledger, nothing removed
    if lake.kind == "local":   # not even the empty folder the open made for its own use
        assert sorted(p.name for p in Path(lake.root).iterdir()) == ["views"]
    assert lake.delta("views").to_pyarrow_table().num_rows == 2


async def test_a_folder_of_the_users_own_files_is_not_made_a_table(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    """`csload sync --parquet ~/contentsquare`, whose `views/` holds the user's downloads of
    the exports from before csload. Until 2026-12-07 the sync made it a Delta table, and a
    sync's vacuum a day and a retention window later deleted every file of the folder that the
    table's log does not name: the user's files. Now the batch is refused before it writes
    anything; hidden files (`.DS_Store`) and a crashed sync's files do not count."""
    fs = lake.fs()
    theirs = {"views/exports.csv": b"session_id\n1\n", "views/old/2026-10.parquet": b"mine",
              "views/date=2026-11-23/mine.parquet": b"mine too"}
    spared = {"views/.DS_Store": b"", "views/_notes.txt": b"",
              "views/date=2026-11-23/part-20261201T000000-0123456789ab-0.parquet": b"a sync's"}
    for rel, data in {**theirs, **spared}.items():
        fs.write_bytes(rel, data)
    (tmp_path / "parts").mkdir()
    staged = await stage_runs(settings, tmp_path / "parts")

    with pytest.raises(StoreError) as info, lake.open() as store:
        store.apply(staged)
    message = str(info.value)
    for word in [lake.root, "folder views", "'exports.csv'", "'old/2026-10.parquet'",
                 "'date=2026-11-23/mine.parquet'", "Nothing was written into it",
                 "a folder of its own"]:
        assert word in message, message
    assert ".DS_Store" not in message and "part-2026" not in message
    assert not [f for f in lake.files() if f.startswith(("views/_delta_log", "sessions"))]
    for rel, data in {**theirs, **spared}.items():
        assert fs.read_bytes(rel) == data

    fs.delete_files(list(theirs))   # moved out: the sync loads
    with lake.open() as store:
        assert {o.status for o in store.apply(staged)} == {"loaded"}
    truth = expected(simulator, [s.run.run_id for s in staged])
    assert_holds(lake, truth["views"], truth["sessions"])
    assert fs.read_bytes("views/.DS_Store") == b""


async def test_another_writers_commit_during_a_sync_fails_its_batch_and_the_next_loads_it(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    run_ids, daily = await load_all(lake, settings, tmp_path / "parts")
    rerun = simulator.rerun(daily["views"], RERUN_DAY)
    with lake.open() as store:
        lake.delta("views").delete("view_number = 1")   # while the sync runs
        with pytest.raises(LakeConflict, match="or another tool writing the table"):
            store.apply(await stage_runs(settings, tmp_path / "parts", [rerun]))

    with lake.open() as store:   # keeps their delete, then loads the run
        [outcome] = store.apply(await stage_runs(settings, tmp_path / "parts", [rerun]))
    assert outcome.status == "loaded"
    truth = expected(simulator, [*run_ids, rerun])
    views = [r for r in truth["views"] if r["view_number"] != 1 or r["_run_id"] == rerun]
    assert len(views) < len(truth["views"])
    assert_holds(lake, views, truth["sessions"])


async def test_a_table_whose_folder_the_user_deletes_is_loaded_again_from_its_runs(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """As a DuckDB target does for a dropped table. Before 2026-12-07 every open refused the
    lake as damaged ("the ledger names table views, which has no Delta log")."""
    run_ids, _ = await load_all(lake, settings, tmp_path / "parts")
    truth = expected(simulator, run_ids)
    sessions_files = sorted(f for f in lake.files("sessions"))
    fs = lake.fs()
    fs.delete_files([f for f in lake.files("views")])
    fs.delete_dir("views")
    assert not lake.files("views")
    views_runs = {r["_run_id"] for r in truth["views"]}

    with caplog.at_level(logging.WARNING, "csload.lake"), lake.open() as store:
        assert not views_runs & store.loaded_runs()   # to be loaded again
        outcomes = store.apply(await stage_runs(settings, tmp_path / "parts"))
    assert "the folder of table(s) views is gone" in caplog.text
    assert {o.run_id for o in outcomes if o.status == "loaded"} == views_runs
    assert_holds(lake, truth["views"], truth["sessions"])
    assert sorted(lake.files("sessions")) == sessions_files   # untouched

    with lake.open() as store:   # loaded once, not again
        assert views_runs <= store.loaded_runs()


def test_a_table_folder_with_files_but_no_log_is_still_refused_as_damaged(
        crafted: Crafted) -> None:
    shutil.rmtree(crafted.root / "views" / "_delta_log")
    assert list((crafted.root / "views").rglob("*.parquet"))
    assert "which has no Delta log" in refused(crafted.lake)


@pytest.mark.parametrize("nested", [False, True])
def test_a_table_with_a_column_invariant_is_refused(tmp_path: Path, nested: bool) -> None:
    """An invariant (a Delta writer checks every row against it, as a CHECK constraint):
    csload commits files it wrote itself, which no writer checks, so it refuses the table.
    deltalake adds none, Spark's older API did: made here from a schema."""
    invariant = {"delta.invariants": json.dumps({"expression": {"expression": "x > 0"}})}
    field = Field("x", PrimitiveType("long"), metadata=invariant)
    column = (Field("errors", ArrayType(StructType([field]))) if nested else field)
    table = DeltaTable.create(str(tmp_path / "views"), schema=Schema(
        [column, Field("date", PrimitiveType("date"))]), partition_by=["date"])
    lake = LakeFS.open(str(tmp_path), {}, env={})
    with pytest.raises(StoreError, match="has column invariants"):
        refuse_unwritable(lake, "views", table)
    plain = DeltaTable.create(str(tmp_path / "sessions"), schema=Schema(
        [Field("x", PrimitiveType("long")), Field("date", PrimitiveType("date"))]),
        partition_by=["date"])
    refuse_unwritable(lake, "sessions", plain)   # no invariant: nothing to refuse


async def test_polars_write_delta_is_refused_with_a_way_out_that_works(
        simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    """Polars' write_delta keeps a partition's value in the log only, its files outside the
    `date=` folders: the sync said the lake was "damaged or tampered with; restore the lake
    from a backup", then to restore the version (QA, 2026-12-08)."""
    import polars as pl

    lake = Lake.local(tmp_path / "lake")
    run_ids, _daily = await load_all(lake, settings, tmp_path / "parts")
    truth = expected(simulator, run_ids)
    before = recorded(lake)["views"]
    pl.read_delta(f"{lake.root}/views").head(2).write_delta(f"{lake.root}/views", mode="append")

    message = refused(lake)
    assert "that add a file outside its date= folders" in message, message
    assert f"restore({before})" in message and "partition_by=['date']" in message, message
    assert "damaged" not in message and "backup" not in message, message
    lake.delta("views").restore(before)   # what the message says to do
    with lake.open() as store:
        assert store.apply([]) == []
    assert_holds(lake, truth["views"], truth["sessions"])
