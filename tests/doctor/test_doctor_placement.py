"""The target check says which jobs every sync of the target refuses (csload.load.placement):
such a job makes every sync exit 3, `csload status` cannot say so (the ledger holds no
refusal), and this check said "ok" once the target had a ledger (found 2026-12-07)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb

import csload
from csload.config import Settings
from csload.doctor import Verdict, run_doctor
from csload.simulator import Simulator


def test_a_job_every_sync_refuses_is_a_warning_naming_it(
        settings: Settings, simulator: Simulator, db_path: Path) -> None:
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE views (note VARCHAR)")   # the user's own table
    con.close()
    views_job = simulator.job_named("Daily pageviews").job_id
    report = csload.sync(settings, db=db_path)
    assert [p.job.job_id for p in report.refused] == [views_job]

    target = run_doctor(settings, db=db_path)["target"]

    assert target.verdict is Verdict.WARN, target.summary
    assert f"every sync refuses 1 job(s) (exit 3): {views_job}" in target.summary
    [line] = [d for d in target.details if d.startswith("refused:")]
    assert f"job {views_job}" in line and "[tables]" in line
    assert target.data["refusedJobs"] == [views_job]

    # Mapped elsewhere, as the refusal says, the job is placed: no warning.
    mapped = dataclasses.replace(settings, tables={views_job: "pageviews"})
    again = run_doctor(mapped, db=db_path)["target"]
    assert again.verdict is Verdict.OK, again.summary
    assert "refusedJobs" not in again.data
