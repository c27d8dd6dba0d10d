"""A local lake whose files were deleted by hand (a `date=` folder): `csload.connect` says so,
with the fix, instead of DuckDB's IOException at every query of the table (found 2026-12-07);
the fix it gives (delete the table's folder, sync again) brings every row back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import csload
from csload.errors import StoreError
from csload.simulator import ServerHandle, Simulator
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
