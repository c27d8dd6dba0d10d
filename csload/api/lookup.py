"""Successful runs whose item does not name their job, given one through the jobs' run lists.

Items of /exports/successful-runs may lack `jobId` (contract section 9, point 9), yet a run is
useless without its job: the run detail, and so its files, is `/exports/{jobId}/runs/{id}`. Such
runs are looked up in the successful runs of each job, one job at a time, until all are found.
This costs requests only when the service leaves jobId out.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from csload.api.models import Job, Run
from csload.errors import ApiError


class RunLister(Protocol):
    """What the lookup needs of the client."""

    async def list_jobs(self) -> list[Job]: ...

    async def list_runs(self, job_id: int, *, state: str | None = None,
                        order: str | None = None) -> list[Run]: ...


def _names_job(item: Any) -> bool:
    return not isinstance(item, dict) or item.get("jobId") not in (None, "")


async def runs_with_jobs(items: list[Any], lister: RunLister) -> list[Run]:
    """The items as Runs, in their order; those without jobId get it from the job listing
    them. ApiError if no job lists one of them."""
    unnamed = [not _names_job(item) for item in items]
    # Job id 0 (ids are positive) stands for "not named" until the lookup below.
    runs = [Run.from_api(item, job_id=0) for item in items]
    wanted = {run.run_id for run, missing in zip(runs, unnamed, strict=True) if missing}
    owner: dict[int, int] = {}
    if wanted:
        for job in await lister.list_jobs():
            for run in await lister.list_runs(job.job_id, state="SUCCESS"):
                if run.run_id in wanted:
                    owner[run.run_id] = job.job_id
            if len(owner) == len(wanted):
                break
        lost = sorted(wanted - set(owner))
        if lost:
            raise ApiError(f"successful runs: run(s) {', '.join(map(str, lost))} name no job, "
                           "and no job lists them")
    return [dataclasses.replace(run, job_id=owner[run.run_id]) if missing else run
            for run, missing in zip(runs, unnamed, strict=True)]
