"""A colleague's `once` job that the job list does not give whole does not stop a backfill.

The backfill reads the project's once jobs (to find the ones it made before) and places jobs
(csload.load.placement). One job csload could not read (here its `segmentId` is -1) failed
every backfill of the project before it created a job; it is now kept without its fields
(`Job.unreadable`), and the backfill goes on (into a table no such job may own).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from csload import BackfillReport, backfill_async, sync_async
from csload.api.client import ExportClient
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.backfills.engine import BackfillStatus
from csload.config import Settings
from csload.errors import ConfigError
from csload.simulator import SimConfig
from tests.support.bfclock import SimDriver
from tests.support.bfref import FIELDS, assert_same_rows, backfill_jobs, table_rows, truth_rows
from tests.support.tampered import Tampered, set_job_value, set_position


@pytest.fixture
def simulator(sim_config: SimConfig) -> Tampered:
    return Tampered(sim_config)


async def test_a_once_job_that_cannot_be_read_does_not_stop_a_backfill(
        settings: Settings, simulator: Tampered, driver: SimDriver, db_path: Path) -> None:
    async with ExportClient(settings) as client:
        theirs = await client.create_job(JobSpec(
            name="a colleague's look", format="CSV", scope="views", frequency="once",
            fields=(JobField("session_id"), JobField("view_number"), JobField("url")),
            date_from=datetime(2026, 11, 20, tzinfo=UTC),
            date_to=datetime(2026, 11, 21, tzinfo=UTC)))
    simulator.edits[simulator.api_path("/exports")] = set_job_value(
        "segmentId", -1)(theirs.job_id)

    async def backfill(**table: str) -> BackfillReport:
        return await backfill_async(
            settings, scope="views", date_from=date(2026, 11, 10), date_to=date(2026, 11, 12),
            fields=FIELDS, db=db_path, sleep=driver.sleep, clock=driver.clock,
            poll_interval=10, **table)   # type: ignore[arg-type]

    # Into `views`, which no job holds yet: that job may be wider, and take it once read.
    with pytest.raises(ConfigError) as waits:
        await backfill()
    assert str(waits.value).startswith(
        f"table 'views' waits for job {theirs.job_id} (a colleague's look), whose definition "
        "cannot be read")
    assert backfill_jobs(simulator) == []
    report = await backfill(table="views_archive")

    assert report.exit_code == 0, report.to_json()
    assert [item.status for item in report.items] == [BackfillStatus.LOADED]
    [job] = backfill_jobs(simulator)
    assert_same_rows(table_rows(db_path, "views_archive"), truth_rows(simulator, job))


async def test_a_backfill_like_a_job_that_waits_is_refused(
        settings: Settings, simulator: Tampered, driver: SimDriver, db_path: Path) -> None:
    # Found by QA (2026-12-08): on a new target whose main views job cannot be read, a
    # colleague's narrow job waits (csload.load.placement), but `backfill --like` it aimed at
    # `views`, which the narrow rows then took from the main job for good.
    settings = dataclasses.replace(settings, tables={})
    views = simulator.job_named("Daily pageviews").job_id
    async with ExportClient(settings) as client:
        narrow = await client.create_job(JobSpec(
            name="narrow daily", format="CSV", scope="views", frequency="daily",
            fields=(JobField("session_id"), JobField("view_number"), JobField("url"))))
    simulator.edits[simulator.api_path("/exports")] = set_position(21)(views)

    with pytest.raises(ConfigError) as refused:
        await backfill_async(settings, scope="views", date_from=date(2026, 11, 10),
                             date_to=date(2026, 11, 12), like=narrow.job_id, db=db_path,
                             sleep=driver.sleep, clock=driver.clock, poll_interval=10)

    assert str(refused.value).startswith(
        f"--like {narrow.job_id}: csload sync refuses that job, so it has no table to share "
        f"(it waits for job {views}")
    assert backfill_jobs(simulator) == [] and not db_path.exists()


async def test_gaps_of_a_job_that_cannot_be_read_are_said_and_the_backfill_goes_on(
        settings: Settings, simulator: Tampered, driver: SimDriver, db_path: Path) -> None:
    # Found by QA (2026-12-08): `backfill --gaps` failed whole (exit 1) on one daily job
    # whose definition the API gave oddly; the other jobs' gaps were not filled either.
    settings = dataclasses.replace(settings, tables={})
    views = simulator.job_named("Daily pageviews").job_id
    await sync_async(settings, db=db_path, jobs=[views], until=date(2026, 11, 22))
    await sync_async(settings, db=db_path, jobs=[views], since=date(2026, 11, 24))

    def odd(payload: Any) -> None:
        next(f for f in payload["fields"] if "customVarPosition" in f)["customVarPosition"] = 21

    simulator.edits[simulator.api_path(f"/exports/{views}")] = odd

    said: list[str] = []
    report = await backfill_async(settings, gaps=True, db=db_path, sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10,
                                  on_event=lambda event: said.append(event.message or ""))

    assert report.items == [] and backfill_jobs(simulator) == []
    # Not filled is not done: exit 3, and no "no missing days" (QA, 2026-12-08).
    assert (report.exit_code, report.unplanned) == (3, [views])
    assert report.to_json()["jobsNotPlanned"] == [views]
    assert not any("no missing days" in message for message in said)
    assert any(w.startswith(f"daily job {views} cannot be read (job {views}: customVarPosition "
                            "21 is out of range") and "2026-11-23" in w for w in report.warnings)
