"""How a `once` job that `csload backfill` created is told from the project's other jobs: its
name (csload.backfills.plan.job_name). Its own module: a sync asks it (it leaves a backfill's
jobs to the backfill, csload.pipeline.plan) without importing the backfill ledger."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from csload.api.models import Job

# The name of every once job a backfill creates starts with this (and a space).
NAME_PREFIX = "csload backfill"


def is_backfill_job(job: Job) -> bool:
    """Whether `job` is a once job a `csload backfill` created (of this target or another)."""
    return job.frequency == "once" and job.name.startswith(NAME_PREFIX + " ")


def left_to_backfill(jobs: Iterable[Job], known: Collection[int], mapped: Collection[int],
                     asked: Collection[int] = ()) -> set[int]:
    """The ids of the backfill jobs among `jobs` that a sync leaves to their backfill, which
    alone knows their table: all but those the target loaded before (`known`), or that are
    `mapped` in the settings or `asked` for by id (what the backfill's own sync does).
    csload.pipeline.plan and the doctor's placement check apply it alike."""
    return {job.job_id for job in jobs if is_backfill_job(job) and job.job_id not in known
            and job.job_id not in mapped and job.job_id not in asked}
