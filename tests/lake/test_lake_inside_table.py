"""A lake root, or a DuckDB database, inside a Delta table's folder: refused before anything is
written (csload.delta_folders).

A Delta table's VACUUM deletes every file in its folder that its log does not name (csload's
own housekeeping does it with `full=True`; checked below with deltalake itself). Until
2026-12-07 `csload sync --parquet LAKE/views` (a lake's table folder taken for the lake) wrote
a second lake inside that table, which the outer lake's next vacuum would have deleted.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

import csload
from csload.cli import main
from csload.errors import ConfigError
from csload.lake.delta import storage_options
from csload.simulator import ServerHandle, Simulator
from tests.support.lakeutil import Lake
from tests.support.simenv import sim_settings, sim_variables


@pytest.fixture
def settings(simulator: Simulator, sim_thread: ServerHandle) -> csload.Settings:
    """The simulator served from a thread: these tests call the blocking `csload.sync`."""
    return sim_settings(simulator, sim_thread.base_url)


def test_a_table_folder_of_a_lake_is_refused_as_a_lake_naming_the_lake(
        lake: Lake, settings: csload.Settings) -> None:
    settings = dataclasses.replace(settings, lake=lake.options or {})
    first = csload.sync(settings, parquet=lake.root)
    assert first.loaded and not first.failed
    before = sorted(lake.files("views"))
    version = lake.delta("views").version()

    for inner in (f"{lake.root}/views", f"{lake.root}/views/date=2026-01-01/more"):
        with pytest.raises(ConfigError) as caught:
            csload.sync(settings, parquet=inner)
        message = str(caught.value)
        assert f"table views of the csload lake {lake.root}" in message, message
        assert f"give the lake's root, {lake.root}" in message
        assert "VACUUM" in message

    # Nothing was written into the table's folder, and its log did not move.
    assert sorted(lake.files("views")) == before
    assert lake.delta("views").version() == version
    # The lake itself still syncs.
    assert not csload.sync(settings, parquet=lake.root).failed


def test_the_lakes_own_folder_is_refused_as_a_lake_naming_the_lake(
        lake: Lake, settings: csload.Settings) -> None:
    """`--parquet ROOT/_csload` was taken for a damaged lake ("restore the lake from a
    backup"), and a local one was written into: ROOT/_csload/_csload/ledger_table (found by
    QA, 2026-12-07)."""
    settings = dataclasses.replace(settings, lake=lake.options or {})
    assert not csload.sync(settings, parquet=lake.root).failed
    before = sorted(lake.files("_csload"))

    for inner, where in ((f"{lake.root}/_csload", "is the"),
                         (f"{lake.root}/_csload/somewhere", "is inside the")):
        with pytest.raises(ConfigError) as caught:
            csload.sync(settings, parquet=inner)
        message = str(caught.value)
        assert f"{where} csload lake {lake.root}'s own folder _csload" in message, message
        assert f"give the lake's root, {lake.root}" in message

    assert sorted(lake.files("_csload")) == before


def test_a_lake_inside_another_tools_delta_table_is_refused(
        lake: Lake, settings: csload.Settings) -> None:
    settings = dataclasses.replace(settings, lake=lake.options or {})
    theirs = f"{lake.root}/their_table"
    write_deltalake(lake.fs().uri("their_table"), pa.table({"a": [1, 2]}),
                    storage_options=storage_options(lake.fs()))
    if lake.kind == "local":   # what a sync refused in that folder may leave: not a lake
        (Path(lake.root) / "_csload").mkdir()
    with pytest.raises(ConfigError) as caught:
        csload.sync(settings, parquet=f"{theirs}/csload")
    message = str(caught.value)
    assert f"is inside the Delta table {theirs}" in message, message
    assert "csload lake" not in message
    assert all("/csload/" not in path for path in lake.files("their_table"))


def test_reading_a_lakes_table_folder_names_the_lake(
        lake: Lake, settings: csload.Settings) -> None:
    """It said "no csload lake at ROOT/views: run `csload sync --parquet ROOT/views` first"."""
    csload.sync(dataclasses.replace(settings, lake=lake.options or {}), parquet=lake.root)
    table = Lake(lake.kind, f"{lake.root}/views", lake.options)
    for read in (table.connect, table.status):
        with pytest.raises(ConfigError, match=f"give the lake's root, {lake.root}"):
            read()


def test_a_database_inside_a_lakes_table_is_refused_by_the_cli(
        local_lake: Lake, settings: csload.Settings, simulator: Simulator,
        sim_thread: ServerHandle) -> None:
    csload.sync(settings, parquet=local_lake.root)
    database = Path(local_lake.root) / "views" / "cs.duckdb"
    result = CliRunner().invoke(main, ["sync", "--db", str(database)],
                                env=sim_variables(simulator, sim_thread.base_url))
    assert result.exit_code != 0
    assert f"database {database} is inside table views of the csload lake" in result.output
    assert not database.exists()


def test_a_delta_vacuum_deletes_what_its_log_does_not_name_in_its_folder(
        local_lake: Lake, settings: csload.Settings) -> None:
    """Why the refusal: the vacuum csload runs (`full=True`) takes a nested lake's data files,
    its log, and a database file, once older than the window."""
    csload.sync(settings, parquet=local_lake.root)
    table = Path(local_lake.root) / "views"
    strays = [table / "sessions" / "date=2026-01-01" / "part-0.parquet",
              table / "sessions" / "_delta_log" / "00000000000000000000.json",
              table / "cs.duckdb"]
    old = time.time() - 3 * 86400
    for stray in strays:
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"x")
        os.utime(stray, (old, old))
    removed = DeltaTable(str(table)).vacuum(retention_hours=0, dry_run=True,
                                            enforce_retention_duration=False, full=True)
    assert {str(table / path) for path in removed} >= {str(s) for s in strays}


def test_the_lakes_ledger_is_named_alike_where_the_duckdb_target_cannot_import_it() -> None:
    from csload.delta_folders import DELTA_LOG, LAKE_LEDGER_LOG
    from csload.lake.layout import LEDGER_TABLE_DIR

    assert f"{LEDGER_TABLE_DIR}/{DELTA_LOG}" == LAKE_LEDGER_LOG
