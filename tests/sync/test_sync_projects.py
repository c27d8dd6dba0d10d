"""A target holds one Contentsquare project's exports (csload.pipeline.plan.check_project).

A company with several projects (a site per country) synced them into the one default
`contentsquare.duckdb`: project 43's main views job took table `views` (same fields), and a
session id identifies a session within its project only, so each run of one project replaced
the other's rows of the same keys, silently. Now the target records its project (the settings'
`project_id`, or the one the token answer names), and a sync, a dry run or a backfill of
another project is refused before anything is written or created. Two simulators of different
projects over real HTTP, a real DuckDB file and a local lake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

import csload
from csload.config import Settings
from csload.doctor import Verdict, run_doctor
from csload.errors import AuthError, ConfigError
from csload.load.ledger import Ledger
from csload.simulator import SimConfig, Simulator
from tests.support.simenv import sim_settings
from tests.support.syncref import SIM_START, expected_tables, successful_runs, table_rows


@pytest.fixture
def other() -> Iterator[tuple[Simulator, Settings]]:
    """Project 43, with project-level credentials: no project_id in the settings, so the
    project is the one the token answer names."""
    sim = Simulator(SimConfig(seed=8, days=3, sessions_per_day=80, start_time=SIM_START,
                              project_id=43))
    handle = sim.start_in_thread()
    try:
        settings = sim_settings(sim, handle.base_url)
        yield sim, Settings(client_id=settings.client_id,
                            client_secret=settings.client_secret, auth_url=settings.auth_url)
    finally:
        handle.stop()


def counts(db: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT (SELECT count(*) FROM views), (SELECT count(*) FROM _csload.runs), "
            "(SELECT count(*) FROM _csload.jobs)").fetchall()


def assert_refused(error: pytest.ExceptionInfo[ConfigError], target: str) -> None:
    for word in [target, "project 42", "project 43", "a target of its own"]:
        assert word in str(error.value), str(error.value)


def test_a_database_refuses_another_projects_sync_dry_run_and_backfill(
        simulator: Simulator, settings: Settings, db_path: Path,
        other: tuple[Simulator, Settings]) -> None:
    assert simulator.config.project_id == 42 and settings.project_id == 42
    csload.sync(settings, db=db_path)
    before = counts(db_path)
    sim43, settings43 = other
    status = csload.status(db_path)   # `csload status` shows the project too
    assert status.project == 42 and status.to_json()["projectId"] == 42

    for dry_run in (True, False):
        with pytest.raises(ConfigError) as error:
            csload.sync(settings43, db=db_path, dry_run=dry_run)
        assert_refused(error, str(db_path))
    with pytest.raises(ConfigError) as error:
        csload.backfill(settings43, scope="views", date_from=date(2026, 11, 20),
                        date_to=date(2026, 11, 21), fields=["session_id", "view_number"],
                        db=db_path)
    assert_refused(error, str(db_path))
    assert sim43.stats.requests["create_job"] == 0
    assert counts(db_path) == before   # nothing of project 43's written

    # Its own target: loaded, equal to its simulator's truth; project 42's syncs go on
    other_db = db_path.with_name("project43.duckdb")
    assert csload.sync(settings43, db=other_db).loaded
    columns, rows = table_rows(other_db, "views")
    want_columns, want = expected_tables(sim43, successful_runs(sim43))["views"]
    assert columns == want_columns and len(rows) == len(want)
    assert csload.status(other_db).project == 43   # the token answer's project, recorded
    assert not csload.sync(settings, db=db_path).refused


def test_a_lake_refuses_another_projects_sync(
        settings: Settings, tmp_path: Path, other: tuple[Simulator, Settings]) -> None:
    lake = tmp_path / "lake"
    csload.sync(settings, parquet=lake)
    before = sorted(p.relative_to(lake) for p in lake.rglob("*") if "_csload" not in p.parts)
    with pytest.raises(ConfigError) as error:
        csload.sync(other[1], parquet=lake)
    assert_refused(error, str(lake))
    assert csload.status(parquet=lake).project == 42
    after = sorted(p.relative_to(lake) for p in lake.rglob("*") if "_csload" not in p.parts)
    assert after == before


def test_a_project_the_credentials_cannot_reach_is_named_in_the_error(
        settings: Settings, db_path: Path) -> None:
    """The token endpoint's 403 was explained as a missing 'data-export' scope only, also when
    the project id was the wrong one (a colleague's CONTENTSQUARE_PROJECT_ID)."""
    with pytest.raises(AuthError) as error:
        csload.sync(dataclasses.replace(settings, project_id=43), db=db_path)
    for word in ["'data-export' scope", "or access to project 43", "CONTENTSQUARE_PROJECT_ID"]:
        assert word in str(error.value), str(error.value)


def test_doctor_says_the_target_holds_another_project(
        settings: Settings, db_path: Path, other: tuple[Simulator, Settings]) -> None:
    csload.sync(settings, db=db_path)
    target = run_doctor(other[1], db=db_path)["target"]
    assert target.verdict is Verdict.FAIL
    for word in ["project 42", "project 43", "a target of its own"]:
        assert word in target.summary, target.summary
    assert run_doctor(settings, db=db_path)["target"].verdict is Verdict.OK


@pytest.mark.parametrize(("value", "project"), [
    ("42", 42), ("9" * 5000, None), ("²", None), ("-1", None), ("", None)])
def test_a_recorded_project_is_read_only_when_it_is_a_project_id(
        value: str, project: int | None) -> None:
    """A lake's ledger is read from storage anyone with write access could craft: a value
    int() refuses ('²' passes str.isdigit; 5000 digits pass Python's limit) must not crash
    `status` or a sync; it is read as no project."""
    con = duckdb.connect()
    try:
        ledger = Ledger(con)
        ledger.ensure()
        con.execute("INSERT INTO _csload.meta VALUES ('project_id', ?)", [value])
        assert ledger.project_id() == project
    finally:
        con.close()
