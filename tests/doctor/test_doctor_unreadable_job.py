"""Doctor names a job whose definition the job list does not give whole, and goes on.

Such a job (a custom variable at position 21, found by QA on 2026-12-07) made the first call,
listing the jobs, fail: doctor blamed the endpoint and skipped every check after it. A sync
now refuses that job alone (csload.load.placement); doctor says so in its `jobs` check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csload.config import Settings
from csload.doctor import Verdict, run_doctor
from csload.simulator import SimConfig
from tests.support.tampered import Tampered, set_position


@pytest.fixture
def simulator(sim_config: SimConfig) -> Tampered:
    return Tampered(sim_config)


def test_a_job_that_cannot_be_read_fails_the_jobs_check_only(
        settings: Settings, simulator: Tampered, db_path: Path) -> None:
    views = simulator.job_named("Daily pageviews").job_id
    simulator.edits[simulator.api_path("/exports")] = set_position(21)(views)

    report = run_doctor(settings, db=db_path)

    check = report["jobs"]
    assert check.verdict is Verdict.FAIL
    assert (f"job {views}: its definition cannot be read: job {views}: customVarPosition 21 "
            "is out of range (an integer from 1 to 20)") in check.summary
    assert "a sync refuses such a job and loads its other jobs" in (check.hint or "")
    assert "csload doctor --save" in (check.hint or "")
    assert "create one with other aliases" not in (check.hint or "")
    [line] = [item for item in check.data["jobs"] if item["jobId"] == views]
    assert "customVarPosition 21" in line["problem"]
    assert {c.id for c in report.failed} == {"jobs"}
    for check_id in ("token_endpoint", "credentials", "endpoint", "sample_jsonl"):
        assert report[check_id].verdict is Verdict.OK, (check_id, report[check_id].summary)
