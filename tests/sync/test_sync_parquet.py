"""`csload sync --parquet ROOT`: the same pipeline into a local lake, checked against the truth.

Every test runs against the contract's guesses and against the ClickHouse dialect (contract
section 9).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import csload
from csload.config import Settings
from csload.simulator import SimConfig, Simulator
from tests.support.syncref import (
    VIEWS_HARD,
    assert_hard_cases,
    assert_rows_equal,
    expected_tables,
    lake_rows,
    successful_runs,
)

Row = dict[str, Any]


@pytest.fixture
def sim_config(dialect_config: SimConfig) -> SimConfig:
    return dialect_config


def test_cli_sync_into_a_lake_equals_the_truth(simulator: Simulator, cli: Callable[..., Result],
                                               tmp_path: Path) -> None:
    root = tmp_path / "lake"
    plan = cli("sync", "--parquet", str(root), "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["runsPlanned"] > 0
    assert not root.exists(), "a dry run creates nothing"

    first = cli("sync", "--parquet", str(root), "--json")
    report = json.loads(first.stdout)
    assert first.exit_code == (3 if report["runsExpired"] else 0), first.output
    assert report["target"] == str(root)
    loaded = [r["runId"] for r in report["runs"] if r["status"] == "loaded"]
    expected = expected_tables(simulator, loaded)
    for table, (columns, rows) in expected.items():
        got_columns, got_rows = lake_rows(root, table)
        assert got_columns == columns
        assert_rows_equal(got_rows, rows, table)
    _, views = lake_rows(root, "views")
    assert_hard_cases(views, VIEWS_HARD)
    # Hive layout, one folder per day, as the row's own date (beside the table's Delta log).
    days = sorted(p.name for p in (root / "views").iterdir() if p.name != "_delta_log")
    assert days == sorted({f"date={r['_date']:%Y-%m-%d}" for r in views})

    again = cli("sync", "--parquet", str(root), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["runs"] == []

    status = cli("status", "--parquet", str(root), "--json")
    assert status.exit_code == 0, status.output
    state = json.loads(status.stdout)
    assert {t["table"]: t["rows"] for t in state["tables"]} == {
        table: len(rows) for table, (_, rows) in expected.items()}
    assert sorted(r["runId"] for r in state["expiredRuns"]) == sorted(
        r["runId"] for r in report["runs"] if r["status"] == "expired")


def test_lake_rerun_of_a_day_replaces_it(simulator: Simulator, settings: Settings,
                                         tmp_path: Path) -> None:
    root = tmp_path / "lake"
    csload.sync(settings, parquet=str(root))
    views = simulator.job_named("Daily pageviews")
    first_day = min(run.start.date() for run in simulator.runs(views.job_id))
    simulator.rerun(views.job_id, first_day)
    report = csload.sync(settings, parquet=str(root))
    assert [r.status.value for r in report.runs] == ["loaded"] * len(report.runs)
    loaded = [r for r in successful_runs(simulator) if not _expired(simulator, r)]
    expected = expected_tables(simulator, loaded)
    _, rows = lake_rows(root, "views")
    assert_rows_equal(rows, expected["views"][1], "views")


def _expired(simulator: Simulator, run_id: int) -> bool:
    record = simulator.run(run_id)
    return simulator.clock.now() >= record.files_expire_at(simulator.config.file_retention_days)


def test_both_targets_at_once_is_refused(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli("sync", "--parquet", str(tmp_path / "lake"), "--db", str(tmp_path / "x.duckdb"))
    assert result.exit_code == 2   # a usage error
    assert "not both" in result.stderr
    assert not (tmp_path / "lake").exists() and not (tmp_path / "x.duckdb").exists()


@pytest.mark.parametrize("root", ["/proc/csload-lake", "s3://"])
def test_unusable_lake_fails_before_any_download(root: str, simulator: Simulator,
                                                 cli: Callable[..., Result]) -> None:
    storage = simulator.stats.storage_requests
    result = cli("sync", "--parquet", root)
    assert result.exit_code == 1, result.output
    assert "error:" in result.stderr and "Traceback" not in result.output
    assert simulator.stats.storage_requests == storage
