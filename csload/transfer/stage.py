"""Staging one run: fetch its parts' URLs, download every part to a staging folder.

Parts are checked for their length (Content-Length) but their gzip stream is not inflated
here: the load reads every byte of it through DuckDB's gzip reader, which fails on a stream
that ends early, and the pipeline then downloads the damaged parts again (`Redo`), inflated
while streaming that time. Inflating each part twice cost a sixth of a sync's CPU
(benchmarks/bench_sync.py).

A 403 from storage usually means the signed URL outlived its lifetime (it may have been fetched
long before the download started): the run detail is fetched again for fresh URLs, and the part
retried at once, in the same download slot. A 403 on a URL fetched just now, or a 404, means
the run's files are gone (storage keeps them 7 days): the run is reported as expired, to be
backfilled; but a 403 or 404 while storage's own clock says the files are still kept (the
file's `expirationDate`, else the run's finish + 7 days) is a failed download, tried again by
the next sync: an expired run is never downloaded again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio

from csload.api.client import ExportClient
from csload.api.models import Job, Part, Run, kept_until
from csload.errors import (
    CsloadError,
    DownloadError,
    PartError,
    PartFilesGone,
    PartUrlExpired,
    RunExpired,
    StorageGone,
    StorageRefused,
    part_label,
    window_backfill_command,
)
from csload.transfer.host import StorageHost
from csload.transfer.slots import OrderedSlots
from csload.transfer.staged import StagedPart, StagedRun, check_run_parts, check_run_times

# Fresh run details fetched for one part before its files are declared gone. Three: a part
# whose download waits out retries can see its fresh URL outlive its lifetime more than once
# (tests/reliability's all-faults cell, where URLs expire three times during one sync, failed
# a run now and then with two).
URL_REFRESHES = 3


@dataclass(frozen=True, slots=True)
class Redo:
    """Download some parts of a staged run again: the load found their gzip streams damaged."""

    staged: StagedRun
    part_ids: frozenset[int]
    # Downloads left for each of these parts (the first one was the damaged download).
    attempts: int


@dataclass(slots=True)
class _RunUrls:
    """The latest run detail's URLs, shared by the run's part downloads."""

    parts: dict[int, Part]
    generation: int = 0


def run_dir(staging: Path, job_id: int, run_id: int) -> Path:
    return staging / f"job-{job_id}" / f"run-{run_id}"


def discard_staging(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _make_run_folder(folder: Path, job_id: int, run_id: int) -> None:
    """The run's staging folder. The target checked its staging folder when it opened, so
    this fails only when the disk changed since (full, or the folder removed): the run fails
    with why, and the next sync tries it again."""
    try:
        # The user's only, as the staging folder it is in (csload.target).
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"{part_label(job_id, run_id, None)}: cannot create the staging folder {folder}: "
            f"{exc.strerror or type(exc).__name__}; free some space there or choose another "
            "staging folder (--staging-dir)", job_id=job_id, run_id=run_id) from None


async def stage_run(
    client: ExportClient,
    job: Job,
    run: Run,
    staging: Path,
    table: str,
    download_slots: OrderedSlots,
    on_part: Callable[[int], None] = lambda _bytes: None,
    priority: int = 0,
    redo: Redo | None = None,
) -> StagedRun:
    """Download all parts of `run` into `staging`; raise PartError or RunExpired on failure.

    Its parts take download slots by (`priority`, part id): lower first. With `redo`, only
    its parts are downloaded (again, over its staged files, gzip verified while streaming);
    the run's other parts stay as staged.

    On failure the run's staging folder is removed: a run is staged whole or not at all.
    """
    folder = run_dir(staging, job.job_id, run.run_id)
    storage = StorageHost(client)
    urls = _RunUrls({})
    latest = run
    try:
        detail = latest = await client.get_run(job.job_id, run.run_id)
        parts = detail.parts or ()
        # Before the folder or any download: a run listing 10^6 parts was downloaded whole,
        # and refused only by the loader (which checks again, for runs staged elsewhere).
        check_run_parts(job.job_id, run.run_id, len(parts), client.limits)
        for told in (run, detail):   # the list orders the runs, the detail is loaded
            check_run_times(job, told, datetime.now(UTC))
        urls.parts = {part.part_id: part for part in parts}
        refresh_lock = anyio.Lock()
        staged: dict[int, StagedPart] = {}
        await anyio.to_thread.run_sync(_make_run_folder, folder, job.job_id, run.run_id)

        async def refresh(seen_generation: int) -> None:
            async with refresh_lock:
                if urls.generation != seen_generation:
                    return  # another part already fetched fresh URLs
                fresh = await client.get_run(job.job_id, run.run_id)
                urls.parts = {part.part_id: part for part in fresh.parts or ()}
                urls.generation += 1

        async def fetch(part_id: int) -> None:
            dest = folder / f"part-{part_id:05d}.{job.format.lower()}.gz"
            # The slot is held across URL refreshes: a fresh URL is used at once. Queued again
            # behind other downloads, it could expire before its turn as the first one did, and
            # a healthy run would end up declared expired (found by tests/reliability).
            async with download_slots.slot((priority, part_id)):
                for refreshes in range(URL_REFRESHES + 1):
                    generation = urls.generation
                    part = urls.parts.get(part_id)
                    if part is None:
                        raise PartFilesGone(
                            f"{part_label(job.job_id, run.run_id, part_id)}: no longer listed "
                            "in the run's files", job_id=job.job_id, run_id=run.run_id,
                            part_id=part_id)
                    try:
                        result = await storage.download_part(
                            part, dest, job_id=job.job_id, run_id=run.run_id,
                            # Inflated by the load, not here, the first time: a damaged stream
                            # is found there and its parts downloaded again (`redo`), verified.
                            # Issue 17's A/B (benchmarks/results/ab-2026-12-06.md):
                            # verifying every part while it downloads made a 1 M-row sync
                            # 1.38x DuckDB's own load against 1.16x, one run of each.
                            verify_gzip=redo is not None,
                            attempts=None if redo is None else redo.attempts)
                    except PartUrlExpired:
                        if refreshes == URL_REFRESHES:
                            raise
                        await refresh(generation)
                        continue
                    staged[part_id] = StagedPart(part_id=part_id, path=result.path,
                                                 bytes=result.bytes_written)
                    on_part(result.bytes_written)
                    return

        kept = {} if redo is None else {p.part_id: p for p in redo.staged.parts
                                        if p.part_id not in redo.part_ids}
        staged.update(kept)
        async with anyio.create_task_group() as group:
            for part_id in urls.parts:
                if part_id not in kept:
                    group.start_soon(fetch, part_id)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(discard_staging, folder)
        failure = _first_failure(exc)
        if isinstance(failure, StorageRefused | StorageGone):
            until = kept_until(urls.parts.get(failure.part_id or 0), latest)
            if until is not None and _still_kept(failure, until):
                # Not expired: recorded as failed, so the next sync tries the run again (an
                # expired run is never fetched again; found by tests/reliability).
                refused = ("refused the part even with freshly signed URLs (HTTP 403)"
                           if isinstance(failure, StorageRefused)
                           else "answered that the part does not exist (HTTP 404)")
                raise DownloadError(
                    f"{part_label(job.job_id, run.run_id, failure.part_id)}: storage {refused}"
                    f", although the run's files are kept until {until:%Y-%m-%d %H:%M} "
                    "UTC; the next sync tries it again", job_id=job.job_id, run_id=run.run_id,
                    part_id=failure.part_id) from None
        if isinstance(failure, PartFilesGone | PartUrlExpired):
            command = window_backfill_command(job.job_id, job.frequency, run.start_date,
                                              run.end_date)
            raise RunExpired(job.job_id, run.run_id, _expiry_cause(failure), command) from None
        if failure is not None:
            raise failure from None
        raise
    ordered = tuple(staged[part_id] for part_id in sorted(staged))
    return StagedRun(job=job, run=detail, parts=ordered, table=table)


def _still_kept(failure: StorageRefused | StorageGone, kept_until: datetime) -> bool:
    """Whether the files should still be there when storage refused them (by storage's clock,
    or the local one if storage sent no Date)."""
    return (failure.server_time or datetime.now(UTC)) < kept_until


def _expiry_cause(failure: PartFilesGone | PartUrlExpired) -> str:
    # Not the part error's own text: it says to fetch fresh URLs, which was done already.
    part = "a part" if failure.part_id is None else f"part {failure.part_id}"
    if isinstance(failure, PartUrlExpired):
        return f"storage refused {part} even with freshly signed URLs (HTTP 403)"
    return f"storage no longer has {part}"


def _first_failure(exc: BaseException) -> CsloadError | None:
    """The csload error behind `exc`, looking inside the task group's exception groups."""
    if isinstance(exc, PartError | RunExpired):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_failure(inner)
            if found is not None:
                return found
    if isinstance(exc, CsloadError):
        return exc
    return None
