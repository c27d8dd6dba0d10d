"""`run_doctor_async()`: every check, in order, through csload's own client and loader."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TypeVar

import aiohttp
import anyio
import anyio.to_thread

from csload.api.client import ExportClient
from csload.api.models import Job, Run
from csload.concurrency import run_blocking
from csload.config import Settings, lake_options_for, settings_file_warnings
from csload.doctor.catalog import check_fields, check_jobs, live_jobs
from csload.doctor.connect import (
    check_clock,
    check_over_limit,
    check_paging,
    check_proxy,
    first_contact,
)
from csload.doctor.fetch import SAMPLE_BYTES
from csload.doctor.record import Recorder
from csload.doctor.report import Check, DoctorReport, SampleLines, Verdict, clean
from csload.doctor.sample import Sample, check_sample, newest_runs
from csload.doctor.settings import check_settings, is_simulator, settings_failed
from csload.doctor.target_check import check_target
from csload.doctor.trial import quiet_loader
from csload.errors import CsloadError
from csload.lake.layout import RESERVED_COLUMNS
from csload.load.columns import layout_problem

T = TypeVar("T")

SAMPLE_CHECKS = {"CSV": "sample_csv", "JSONL": "sample_jsonl"}
_AFTER_API = ("jobs", "fields", "paging", "sample_csv", "sample_jsonl")


async def run_doctor_async(
    settings: Settings,
    *,
    db: str | Path | None = None,
    parquet: str | Path | None = None,
    sources: Mapping[str, str] | None = None,
    sample_bytes: int = SAMPLE_BYTES,
    config_file: str | Path | None = None,
) -> DoctorReport:
    """Check that csload can work with the project `settings` reach, and the target `db` (a
    DuckDB file, default `contentsquare.duckdb`) or `parquet` (a lake) a sync would write.

    `sources` says where each setting came from (`setting_sources`); `sample_bytes` bounds
    what is downloaded of each sampled part; `config_file` (default ./csload.toml) is the
    settings file, whose warnings (a secret others can read) the settings check gives.
    Nothing is written but what the module docstring of csload.doctor says; nothing is sent
    but the requests a sync makes.
    """
    if sample_bytes < 1024:
        raise ValueError("sample_bytes must be at least 1024")
    report = DoctorReport(simulator=is_simulator(settings.auth_url))
    check_settings(report["settings"], settings, sources, settings_file_warnings(config_file))
    recorder = Recorder(settings)
    session = recorder.session(settings.limits)
    async with session, ExportClient(settings, session=session) as client:
        with quiet_loader():
            samples, jobs = await _api_checks(
                report, client, recorder, session, settings, sample_bytes,
                RESERVED_COLUMNS if parquet is not None else None)
        project = client.project_id
    report.responses = recorder.saved_responses()
    report.samples = [SampleLines(s.name, recorder.redact(s.first_lines))
                      for s in samples if s.name]
    await anyio.to_thread.run_sync(partial(
        check_target, report["target"], db=db, parquet=parquet,
        storage_options=lake_options_for(parquet, settings.lake), auth_url=settings.auth_url,
        project_id=project, jobs=jobs, mapped=settings.tables))
    return report


def run_doctor(
    settings: Settings,
    *,
    db: str | Path | None = None,
    parquet: str | Path | None = None,
    sources: Mapping[str, str] | None = None,
    sample_bytes: int = SAMPLE_BYTES,
    config_file: str | Path | None = None,
) -> DoctorReport:
    """Blocking `run_doctor_async` (the same arguments), for scripts and notebooks (works
    inside a running loop)."""
    return run_blocking(partial(run_doctor_async, settings, db=db, parquet=parquet,
                                sources=sources, sample_bytes=sample_bytes,
                                config_file=config_file),
                        thread_name="csload-doctor")


def report_without_settings(message: str, *, sources: Mapping[str, str] | None = None,
                            db: str | Path | None = None, parquet: str | Path | None = None,
                            storage_options: Mapping[str, str] | None = None) -> DoctorReport:
    """The report when the settings cannot be loaded (`message` says why): the settings check
    fails, the target is checked all the same, and the API checks are skipped."""
    report = DoctorReport()
    settings_failed(report["settings"], message, sources)
    for check in report.checks.values():
        if check.id not in ("settings", "target"):
            check.skip("no usable settings")
    check_target(report["target"], db=db, parquet=parquet,
                 storage_options=storage_options or {})
    return report


async def _api_checks(report: DoctorReport, client: ExportClient, recorder: Recorder,
                      session: aiohttp.ClientSession, settings: Settings,
                      sample_bytes: int, reserved: Mapping[str, str] | None
                      ) -> tuple[list[Sample], list[Job] | None]:
    """The samples, and the project's jobs (None: the API could not be used)."""
    jobs = await first_contact(client, recorder, report, settings)
    observed = client.observed
    samples: list[Sample] = []
    if jobs is None:
        for name in _AFTER_API:
            report[name].skip("the API could not be used")
    else:
        live = live_jobs(jobs)
        runs, errors = await _successful_runs(client, live)
        check_jobs(report["jobs"], jobs, {k: len(v) for k, v in runs.items()}, errors,
                   reserved)
        await _guarded(report["fields"], recorder, partial(check_fields, report["fields"],
                                                            client), None)
        # The sample of a format is of a job csload loads, when the format has one; never of
        # a job whose definition could not be read (its columns are unknown).
        readable = [job for job in live if not job.unreadable]
        loadable = [job for job in readable if layout_problem(job, reserved) is None]
        newest = {**newest_runs(readable, runs), **newest_runs(loadable, runs)}
        for fmt, check_id in SAMPLE_CHECKS.items():
            work = partial(check_sample, report[check_id], fmt, newest.get(fmt),
                           has_job=fmt in newest, client=client, session=session,
                           settings=settings, sample_bytes=sample_bytes)
            samples.append(await _guarded(report[check_id], recorder, work, Sample()))
        longest = max([len(jobs), *(len(r) for r in runs.values())])
        check_paging(report["paging"], observed, longest)
    storage_proxy = next((s.proxy for s in samples if s.proxy), None)
    token = recorder.token_answer()
    check_proxy(report["proxy"], observed, storage_proxy,
                token_answered=token is not None and token[0].status is not None)
    check_clock(report["clock"], observed)
    check_over_limit(report["over_limit"], observed)
    return samples, jobs


async def _guarded(check: Check, recorder: Recorder, work: Callable[[], Awaitable[T]],
                   default: T) -> T:
    """One check's work: an error doctor did not foresee fails that check, and the others
    still run (a diagnosis that stops at its first surprise says the least)."""
    try:
        return await work()
    except Exception as exc:
        check.set(Verdict.FAIL, f"doctor could not finish this check: {type(exc).__name__}: "
                  f"{clean(recorder.redact(str(exc)))}",
                  "report it with `csload doctor --save DIR` attached")
        return default


async def _successful_runs(client: ExportClient, jobs: list[Job]
                           ) -> tuple[dict[int, list[Run]], dict[int, str]]:
    """Each job's successful runs, as a sync lists them (the longest lists of a project: the
    client learns the server's page size from them)."""
    runs: dict[int, list[Run]] = {}
    errors: dict[int, str] = {}

    async def one(job: Job) -> None:
        try:
            runs[job.job_id] = await client.list_runs(job.job_id, state="SUCCESS")
        except CsloadError as exc:
            errors[job.job_id] = clean(exc)

    async with anyio.create_task_group() as group:
        for job in jobs:
            group.start_soon(one, job)
    return runs, errors
