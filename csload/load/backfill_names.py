"""How a `once` job that `csload backfill` created is told from the project's other jobs: its
name (csload.backfills.plan.job_name). Its own module: a sync asks it (it leaves a backfill's
jobs to the backfill, csload.pipeline.plan) without importing the backfill ledger."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from csload.api.models import Job

# The name of every once job a backfill creates starts with this (and a space).
NAME_PREFIX = "csload backfill"
# The whole name (csload.backfills.plan.job_name): `csload backfill views
# 2026-11-01..2026-11-07 3f2a9c1e`. Read back from any text: matched whole.
JOB_NAME = re.compile(re.escape(NAME_PREFIX) + r" (?P<scope>[a-z]+) (?P<first>\d{4}-\d{2}-\d{2})"
                      r"\.\.(?P<last>\d{4}-\d{2}-\d{2}) (?P<key>[0-9a-f]{8})")


def is_backfill_job(job: Job) -> bool:
    """Whether `job` is a once job a `csload backfill` created (of this target or another):
    named as a backfill names its jobs. A colleague's "csload backfill test" was left to a
    backfill that never made it, so no sync loaded it (QA, 2026-12-08)."""
    return job.frequency == "once" and JOB_NAME.fullmatch(job.name) is not None


def left_to_backfill(jobs: Iterable[Job], known: Collection[int], mapped: Collection[int],
                     asked: Collection[int] = ()) -> set[int]:
    """The ids of the backfill jobs among `jobs` that a sync leaves to their backfill, which
    alone knows their table: all but those the target loaded before (`known`), or that are
    `mapped` in the settings or `asked` for by id (what the backfill's own sync does).
    csload.pipeline.plan and the doctor's placement check apply it alike."""
    return {job.job_id for job in jobs if is_backfill_job(job) and job.job_id not in known
            and job.job_id not in mapped and job.job_id not in asked}
