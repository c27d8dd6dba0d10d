"""Doctor's target check says what the next sync meets in a lake that other writers committed
to (docs/lake.md, "Writing to the tables"; csload.lake.recovery.preview): their commits kept, a
stopped sync's undone, a change it cannot keep or another tool's table refused. A lake synced
from the simulator over real HTTP; the other writer is deltalake. Doctor changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

import csload
from csload.config import Settings
from csload.doctor.report import Check, Verdict
from csload.doctor.target_check import check_target


def target_check(lake: Path) -> Check:
    check = Check("target", "target")
    check_target(check, parquet=lake)
    return check


def versions(lake: Path) -> dict[str, int]:
    return {t.name: DeltaTable(str(t)).version() for t in sorted(lake.iterdir())
            if (t / "_delta_log").is_dir()}


def test_doctor_says_the_next_sync_keeps_another_writers_delete(
        settings: Settings, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    csload.sync(settings, parquet=str(lake))
    DeltaTable(str(lake / "views")).delete("view_number = 1")
    before = versions(lake)

    check = target_check(lake)
    assert check.verdict is Verdict.OK, check.summary
    assert (f"next sync: table views: the commits csload did not make (version "
            f"{before['views']} ('DELETE')) will be kept") in check.details
    assert versions(lake) == before   # doctor kept nothing yet: the sync does
    csload.sync(settings, parquet=str(lake))
    assert not any(d.startswith("next sync") for d in target_check(lake).details)


def test_doctor_fails_where_the_next_sync_would_refuse_the_lake(
        settings: Settings, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    csload.sync(settings, parquet=str(lake))
    views = DeltaTable(str(lake / "views"))
    row = views.to_pyarrow_table().slice(0, 1)
    write_deltalake(views, row.append_column("note", pa.array(["mine"])), mode="append",
                    schema_mode="merge")
    theirs = tmp_path / "theirs"   # a folder of the user's own tables, not a lake
    write_deltalake(str(theirs / "views"), pa.table({"a": [1]}))

    for folder, words in ((lake, "changed its columns (note)"),
                          (theirs, "holds a Delta table that csload did not make")):
        before = sorted(folder.rglob("*"))
        check = target_check(folder)
        assert check.verdict is Verdict.FAIL, check.summary
        assert "a sync would refuse the lake" in check.summary and words in check.summary
        assert sorted(folder.rglob("*")) == before


def test_doctor_says_the_next_sync_loads_a_deleted_tables_runs_again(
        settings: Settings, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    csload.sync(settings, parquet=str(lake))
    shutil.rmtree(lake / "views")

    check = target_check(lake)
    assert check.verdict is Verdict.OK, check.summary
    assert ("next sync: table views: its folder is gone; the runs loaded into it will be "
            "loaded again") in check.details
    assert not (lake / "views").exists()   # doctor changed nothing
    csload.sync(settings, parquet=str(lake))
    assert not any(d.startswith("next sync") for d in target_check(lake).details)
    assert DeltaTable(str(lake / "views")).to_pyarrow_table().num_rows > 0
