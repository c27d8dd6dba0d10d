"""`csload sync --dry-run` says what the sync would do: which table each job goes to, which
jobs are new to the target, and which runs' files have expired, before anything is written."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

import csload
from csload.config import Settings
from csload.pipeline.report import RunStatus
from csload.simulator import SimConfig, Simulator
from tests.support.syncref import (
    LEGACY_JOB,
    SESSIONS_JOB,
    SIM_START,
    VIEWS_JOB,
    create_job,
    day,
    finish_once_job,
)


@pytest.fixture
def sim_config() -> SimConfig:
    # 9 days: the daily runs of 16 and 17 November (and the legacy job's of the 14th) have
    # expired at SIM_START; the others have not.
    return SimConfig(seed=7, days=9, sessions_per_day=20, start_time=SIM_START)


def test_dry_run_predicts_the_runs_whose_files_expired(
        settings: Settings, db_path: Path) -> None:
    plan = csload.sync(settings, db=db_path, dry_run=True)

    assert not db_path.exists(), "a dry run creates nothing"
    predicted = {r.run_id for r in plan.of_status(RunStatus.EXPIRED)}
    assert predicted, "the scenario needs runs whose files expired"
    assert all("expired" in (r.message or "") and "backfill --gaps" in (r.message or "")
               for r in plan.of_status(RunStatus.EXPIRED))
    assert plan.exit_code == 3

    report = csload.sync(settings, db=db_path)

    # The prediction is what the sync then meets, run for run.
    assert {r.run_id for r in report.expired} == predicted
    assert {r.run_id for r in report.loaded} == {
        r.run_id for r in plan.of_status(RunStatus.PLANNED)}


def test_dry_run_shows_each_job_with_its_table_and_flags_new_jobs(
        simulator: Simulator, settings: Settings, db_path: Path,
        cli: Callable[..., Result]) -> None:
    csload.sync(settings, db=db_path)
    narrow = create_job(settings, name="Mobile views", fmt="CSV", scope="views",
                        fields=["session_id", "view_number", ("url", "page_url")],
                        date_from=day("2026-11-23"), date_to=day("2026-11-24"),
                        device="mobile")
    finish_once_job(simulator, narrow)

    result = cli("sync", "--db", str(db_path), "--dry-run", "--json")

    report = json.loads(result.stdout)
    jobs = {j["jobId"]: j for j in report["jobs"]}
    assert jobs[narrow]["table"] == f"views_job_{narrow}" and jobs[narrow]["new"] is True
    assert jobs[narrow]["how"] == "own table"
    assert (jobs[VIEWS_JOB]["table"], jobs[VIEWS_JOB]["new"]) == ("views", False)
    assert (jobs[SESSIONS_JOB]["table"], jobs[LEGACY_JOB]["table"]) == (
        "sessions", f"sessions_job_{LEGACY_JOB}")
    planned = [r for r in report["runs"] if r["status"] == "planned"]
    assert [r["table"] for r in planned] == [f"views_job_{narrow}"]

    text = cli("sync", "--db", str(db_path), "--dry-run")
    assert f"job {narrow} (Mobile views) -> table views_job_{narrow} (new job" in text.output
    # The jobs table: every selected job, its table, and how it got there.
    assert re.search(rf"{VIEWS_JOB}\W+Daily pageviews\W+views\W+loaded before", text.output)
    assert re.search(rf"{narrow}\W+Mobile views\W+views_job_{narrow}\W+new, own table",
                     text.output)
