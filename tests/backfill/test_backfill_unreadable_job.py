"""A colleague's `once` job that the job list does not give whole does not stop a backfill.

The backfill reads the project's once jobs (to find the ones it made before) and places jobs
(csload.load.placement). One job csload could not read (here its `createdAt` is no time)
failed every backfill of the project before it created a job; it is now kept without its
fields (`Job.unreadable`), and the backfill goes on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from csload import backfill_async
from csload.api.client import ExportClient
from csload.api.models import JobField, JobSpec
from csload.backfills.engine import BackfillStatus
from csload.config import Settings
from csload.simulator import SimConfig
from tests.support.bfclock import SimDriver
from tests.support.bfref import FIELDS, assert_same_rows, backfill_jobs, table_rows, truth_rows
from tests.support.tampered import Tampered, set_job_value


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
        "createdAt", "yesterday")(theirs.job_id)

    report = await backfill_async(
        settings, scope="views", date_from=date(2026, 11, 10), date_to=date(2026, 11, 12),
        fields=FIELDS, db=db_path, sleep=driver.sleep, clock=driver.clock, poll_interval=10)

    assert report.exit_code == 0, report.to_json()
    assert [item.status for item in report.items] == [BackfillStatus.LOADED]
    [job] = backfill_jobs(simulator)
    assert_same_rows(table_rows(db_path), truth_rows(simulator, job))
