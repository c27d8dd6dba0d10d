"""Each file variant of contract section 9 (points 1-5) alone: the simulator writes it, and a
sync loads it exactly (row by row against the truth, into a DuckDB file).

The whole ClickHouse preset, every variant at once, runs through the exactly-once suite
(test_sync_exactly_once.py) and the lake's (test_sync_parquet.py); the writers' property test
is tests/reliability/test_rel_roundtrip.py.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

import csload
from csload.config import Settings
from csload.simulator import SimConfig, Simulator
from csload.simulator.config import Variants
from csload.simulator.rows import WIDENED
from tests.support.syncref import (
    SESSIONS_JOB,
    SIM_START,
    VIEWS_JOB,
    assert_db_matches,
    expected_tables,
    successful_runs,
)


def first_part(sim: Simulator, job_id: int) -> str:
    run = successful_runs(sim, [job_id])[0]
    return gzip.decompress(sim.part_bodies(job_id, run, compressed=True)[0]).decode()


def no_header(sim: Simulator) -> bool:
    return not first_part(sim, VIEWS_JOB).startswith("project_id,")


def clickhouse_quoting(sim: Simulator) -> bool:
    text = first_part(sim, VIEWS_JOB)
    # A timestamp and an (empty) array, each quoted although nothing in them needs quotes.
    return '"2026-11-' in text and ',"[]"' in text


def quoted_int64(sim: Simulator) -> bool:
    return re.search(r'"session_id":"\d+"', first_part(sim, SESSIONS_JOB)) is not None


def minute_arrays_in_json(sim: Simulator) -> bool:
    text = first_part(sim, SESSIONS_JOB)
    return (re.search(r'"app_events\.event_time":\["\d{4}-\d\d-\d\d \d\d:\d\d"', text)
            is not None)


def wide_integers(sim: Simulator) -> bool:
    numbers = [int(n) for n in re.findall(r'"session_number":(\d+)', first_part(sim, SESSIONS_JOB))]
    return max(numbers) > WIDENED["session_number"]


# variant switch -> what its files must show (the check fails with the switch off)
SHOWN: dict[str, Callable[[Simulator], bool]] = {
    "csv_without_header": no_header,
    "clickhouse_csv_quoting": clickhouse_quoting,
    "json_quoted_int64": quoted_int64,
    "minute_time_arrays_in_json": minute_arrays_in_json,
    "wide_integers": wide_integers,
}


def config(**switches: bool) -> SimConfig:
    return SimConfig(seed=7, days=3, sessions_per_day=80, start_time=SIM_START,
                     variants=Variants(**switches))


@pytest.fixture
def sim_config(request: pytest.FixtureRequest) -> SimConfig:
    return config(**{request.param: True})


@pytest.mark.parametrize("sim_config", sorted(SHOWN), indirect=True)
def test_each_file_variant_alone_loads_exactly(
    sim_config: SimConfig, simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    [variant] = [name for name in SHOWN if getattr(simulator.variants, name)]
    assert SHOWN[variant](simulator), f"the simulator's files do not show {variant}"
    assert not SHOWN[variant](Simulator(config())), f"the contract's files show {variant}"

    report = csload.sync(settings, db=db_path)

    runs = successful_runs(simulator)
    assert sorted(r.run_id for r in report.loaded) == sorted(runs), report.failed
    assert report.exit_code == 0
    assert_db_matches(db_path, expected_tables(simulator, runs))


@pytest.mark.parametrize("sim_config", ["coarse_catalog_types"], indirect=True)
def test_coarse_catalog_types_are_shown_and_change_no_column_type(
    simulator: Simulator, cli: Callable[..., Result], settings: Settings, db_path: Path
) -> None:
    """The documentation's type names (`Integer`, `String`, `Array(String)`) in the catalog:
    `csload fields` shows them as they are; csload's column types come from its schemas."""
    shown = cli("fields", "--scope", "views")
    assert shown.exit_code == 0, shown.output
    assert "Integer" in shown.output and "Array(String)" in shown.output
    assert "UInt16" not in shown.output and "DateTime" not in shown.output

    report = csload.sync(settings, db=db_path)

    assert report.exit_code == 0
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    con = csload.connect(db_path, read_only=True)
    try:
        types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                                 "WHERE table_name = 'views'").fetchall())
    finally:
        con.close()
    assert (types["session_id"], types["view_number"]) == ("UBIGINT", "BIGINT")
    assert types["view_time"] == "TIMESTAMP"
