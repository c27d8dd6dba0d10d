"""How a `once` job that `csload backfill` created is told from the project's other jobs: its
name (csload.backfills.plan.job_name). Its own module: a sync asks it (it leaves a backfill's
jobs to the backfill, csload.pipeline.plan) without importing the backfill ledger."""

from __future__ import annotations

from csload.api.models import Job

# The name of every once job a backfill creates starts with this (and a space).
NAME_PREFIX = "csload backfill"


def is_backfill_job(job: Job) -> bool:
    """Whether `job` is a once job a `csload backfill` created (of this target or another)."""
    return job.frequency == "once" and job.name.startswith(NAME_PREFIX + " ")
