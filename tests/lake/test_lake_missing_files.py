"""A local lake whose files were deleted by hand (a `date=` folder): `csload.connect` says so,
with the fix, instead of DuckDB's IOException at every query of the table (found 2026-12-07);
the fix it gives (delete the table's folder, sync again) brings every row back."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import deltalake
import pytest

import csload
from csload.doctor import Verdict, run_doctor
from csload.errors import StoreError
from csload.simulator import ServerHandle, Simulator
from tests.support.lakeutil import Lake
from tests.support.simenv import sim_settings


def counts(lake: Path) -> dict[str, int]:
    con = csload.connect(parquet=str(lake))
    try:
        return {table: int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]  # noqa: S608
                for table in ("sessions", "views")}
    finally:
        con.close()


def test_a_deleted_day_folder_is_said_at_connect_with_the_fix_that_works(
        simulator: Simulator, sim_thread: ServerHandle, tmp_path: Path) -> None:
    settings = sim_settings(simulator, sim_thread.base_url)
    lake = tmp_path / "lake"
    assert not csload.sync(settings, parquet=lake).failed
    before = counts(lake)
    day = sorted((lake / "views").glob("date=*"))[0]
    shutil.rmtree(day)

    with pytest.raises(StoreError) as raised:
        csload.connect(parquet=str(lake))
    message = str(raised.value)
    assert "files of table views's current version are missing" in message, message
    assert str(day) in message and f"delete the table's folder {lake / 'views'}" in message

    shutil.rmtree(lake / "views")
    assert not csload.sync(settings, parquet=lake).failed
    assert counts(lake) == before


def test_a_missing_file_is_said_by_the_sync_status_and_doctor_with_the_fix(
        simulator: Simulator, sim_thread: ServerHandle, tmp_path: Path) -> None:
    """The sync failed with "Current transaction is aborted (please ROLLBACK)" on every run
    (a DROP in a `finally` hid the read's error), while status showed the table's rows and
    doctor said "ok target"."""
    settings = sim_settings(simulator, sim_thread.base_url)
    lake = tmp_path / "lake"
    assert not csload.sync(settings, parquet=lake).failed
    [gone, *_] = sorted(deltalake.DeltaTable(str(lake / "sessions")).file_uris())
    Path(gone.removeprefix("file://")).unlink()
    simulator.advance_days(1)
    fix = f"delete the table's folder {lake / 'sessions'}: the next csload sync loads its runs"

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, parquet=lake)
    message = str(raised.value)
    assert "cannot read the files of table sessions" in message and fix in message, message
    assert Path(gone.removeprefix("file://")).name in message
    with pytest.raises(StoreError) as raised:
        csload.status(parquet=lake)
    assert "files of table sessions's current version are missing" in str(raised.value)
    assert fix in str(raised.value)
    target = run_doctor(settings, parquet=lake)["target"]
    assert target.verdict is Verdict.FAIL and fix in target.summary, target.summary

    shutil.rmtree(lake / "sessions")
    assert not csload.sync(settings, parquet=lake).failed
    expected = sum(len(simulator.truth(job.job_id, run.run_id)) for job in simulator.jobs
                   if job.scope == "sessions" and job.name == "Daily sessions"
                   for run in simulator.runs(job.job_id)
                   if simulator.run_state(run.run_id) == "SUCCESS")
    assert counts(lake)["sessions"] == expected


@pytest.mark.parametrize("which", [0, -1])   # pyarrow opening the dataset, or DuckDB reading
def test_a_missing_file_of_an_s3_lake_is_said_by_the_sync_with_the_fix(
        simulator: Simulator, sim_thread: ServerHandle, s3_lake: Lake, which: int) -> None:
    """On S3 the sync said "Current transaction is aborted (please ROLLBACK)" at every run:
    the cleanup of the read's registered dataset failed in the aborted transaction and hid
    the read's own error (found by QA, 2026-12-07)."""
    settings = dataclasses.replace(sim_settings(simulator, sim_thread.base_url),
                                   lake=s3_lake.options or {})
    assert not csload.sync(settings, parquet=s3_lake.root).failed
    gone = sorted(s3_lake.delta("sessions").file_uris())[which]
    s3_lake.fs().fs.delete_file(gone.removeprefix("s3://"))
    simulator.advance_days(1)

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, parquet=s3_lake.root)

    message = str(raised.value)
    assert "cannot read the files of table sessions" in message, message
    assert "delete the table's folder" in message and "aborted" not in message, message


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_a_copied_or_renamed_table_is_refused_not_removed(
        simulator: Simulator, sim_thread: ServerHandle, tmp_path: Path) -> None:
    """`cp -r views views_backup` or `mv views pageviews` in the lake: the sync removed the
    copy (or the renamed table, reloading `views` only from the runs still served) as a table
    a crashed sync had created (QA, 2026-12-08). Refused now, nothing removed; the table's
    name given back, the next sync goes on."""
    settings = sim_settings(simulator, sim_thread.base_url)
    lake = tmp_path / "lake"
    assert not csload.sync(settings, parquet=lake).failed
    before = counts(lake)
    simulator.advance_days(1)
    shutil.copytree(lake / "views", lake / "views_backup")
    copied = files_under(lake / "views_backup")

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, parquet=lake)
    message = str(raised.value)
    assert ("folder views_backup holds a table of csload's that the lake's ledger does not "
            "name (a copy, or a table renamed by hand?)") in message, message
    assert "Move it out of the lake's folder" in message
    assert files_under(lake / "views_backup") == copied
    target = run_doctor(settings, parquet=lake)["target"]
    assert target.verdict is Verdict.FAIL and "views_backup" in target.summary, target.summary

    shutil.rmtree(lake / "views_backup")
    (lake / "views").rename(lake / "pageviews")
    renamed = files_under(lake / "pageviews")
    with pytest.raises(StoreError, match="folder pageviews holds a table of csload's"):
        csload.sync(settings, parquet=lake)
    assert files_under(lake / "pageviews") == renamed
    assert not (lake / "views").exists()

    (lake / "pageviews").rename(lake / "views")
    assert counts(lake) == before
    assert not csload.sync(settings, parquet=lake).failed
    assert counts(lake)["views"] > before["views"]
