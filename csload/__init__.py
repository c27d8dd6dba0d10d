"""csload: load Contentsquare Data Export API runs into DuckDB or Parquet, exactly once.

The public API, every name in `__all__` (locked by tests/unit/test_public_api.py):

    sync, sync_async              load every new successful run into a DuckDB file or a lake
    backfill, backfill_async      load past days through `once` jobs
    status                        what a target's ledger says (StoreStatus)
    connect                       a DuckDB connection to a target, for analysis
    jobs, job, runs, fields,      what the project holds on the Export API, and a new job
    custom_vars, dynamic_vars,    (each with an `_async` twin): csload.api.calls
    check_job, create_job
    run_doctor, run_doctor_async  the checks of `csload doctor`
    load_settings, Settings, Limits, RetryPolicy
    the reports (SyncReport, RunOutcome, RunStatus, Placement, BackfillReport, BackfillEvent,
    DoctorReport, StoreStatus),
    the API's models (Job, JobSpec, JobField, Run, Field, CustomVar, DynamicVarKey), a broken
    rule of a job (Problem: what check_job lists), and every error (the tree is drawn in
    csload.errors).

`sync` and the API calls take `settings=None`, meaning `load_settings()`: the environment,
then ./csload.toml, read at the call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The errors are cheap (no imports of their own) and every caller wants them: eager.
from csload.errors import (
    ApiError,
    ApiRequestError,
    ApiUnavailable,
    AuthError,
    ConfigError,
    CredentialsRejected,
    CsloadError,
    DamagedDownload,
    DownloadError,
    IncompleteDownload,
    InsecureUrlError,
    InvalidJobSpec,
    LakeConflict,
    PartError,
    PartFilesGone,
    PartParseError,
    PartTooLarge,
    PartUrlExpired,
    RunExpired,
    StorageGone,
    StorageRefused,
    StorageTooSlow,
    StoreError,
    StoreLockedError,
)

if TYPE_CHECKING:
    from csload.api.calls import (
        check_job,
        check_job_async,
        create_job,
        create_job_async,
        custom_vars,
        custom_vars_async,
        dynamic_vars,
        dynamic_vars_async,
        fields,
        fields_async,
        job,
        job_async,
        jobs,
        jobs_async,
        runs,
        runs_async,
    )
    from csload.api.catalog import CustomVar, DynamicVarKey, Field
    from csload.api.jobspec import Problem
    from csload.api.models import Job, JobField, Run
    from csload.api.spec import JobSpec
    from csload.backfills.engine import BackfillEvent, BackfillReport, backfill, backfill_async
    from csload.config import Limits, RetryPolicy, Settings, load_settings
    from csload.doctor import DoctorReport, run_doctor, run_doctor_async
    from csload.load.placement import Placement
    from csload.load.status import StoreStatus
    from csload.pipeline.report import RunOutcome, RunStatus, SyncReport
    from csload.pipeline.sync import sync, sync_async
    from csload.target import connect_target as connect

    # The names `status` replaced: importable still (explicit re-exports), not in __all__.
    from csload.target import read_status as read_status
    from csload.target import read_target_status as read_target_status
    from csload.target import status

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ApiRequestError",
    "ApiUnavailable",
    "AuthError",
    "BackfillEvent",
    "BackfillReport",
    "ConfigError",
    "CredentialsRejected",
    "CsloadError",
    "CustomVar",
    "DamagedDownload",
    "DoctorReport",
    "DownloadError",
    "DynamicVarKey",
    "Field",
    "IncompleteDownload",
    "InsecureUrlError",
    "InvalidJobSpec",
    "Job",
    "JobField",
    "JobSpec",
    "LakeConflict",
    "Limits",
    "PartError",
    "PartFilesGone",
    "PartParseError",
    "PartTooLarge",
    "PartUrlExpired",
    "Placement",
    "Problem",
    "RetryPolicy",
    "Run",
    "RunExpired",
    "RunOutcome",
    "RunStatus",
    "Settings",
    "StorageGone",
    "StorageRefused",
    "StorageTooSlow",
    "StoreError",
    "StoreLockedError",
    "StoreStatus",
    "SyncReport",
    "__version__",
    "backfill",
    "backfill_async",
    "check_job",
    "check_job_async",
    "connect",
    "create_job",
    "create_job_async",
    "custom_vars",
    "custom_vars_async",
    "dynamic_vars",
    "dynamic_vars_async",
    "fields",
    "fields_async",
    "job",
    "job_async",
    "jobs",
    "jobs_async",
    "load_settings",
    "run_doctor",
    "run_doctor_async",
    "runs",
    "runs_async",
    "status",
    "sync",
    "sync_async",
]

# Lazy (PEP 562): the rest of the public API is imported on first use, so that `import csload`
# (which every `csload` command does first) does not import the backfill engine, the pipeline,
# DuckDB and aiohttp for a command that needs none of them: eagerly, `import csload` took
# ~0.33 s instead of ~0.01 s. Public name -> (module, name in that module).
_LAZY: dict[str, tuple[str, str]] = {
    "check_job": ("csload.api.calls", "check_job"),
    "check_job_async": ("csload.api.calls", "check_job_async"),
    "create_job": ("csload.api.calls", "create_job"),
    "create_job_async": ("csload.api.calls", "create_job_async"),
    "custom_vars": ("csload.api.calls", "custom_vars"),
    "custom_vars_async": ("csload.api.calls", "custom_vars_async"),
    "dynamic_vars": ("csload.api.calls", "dynamic_vars"),
    "dynamic_vars_async": ("csload.api.calls", "dynamic_vars_async"),
    "fields": ("csload.api.calls", "fields"),
    "fields_async": ("csload.api.calls", "fields_async"),
    "job": ("csload.api.calls", "job"),
    "job_async": ("csload.api.calls", "job_async"),
    "jobs": ("csload.api.calls", "jobs"),
    "jobs_async": ("csload.api.calls", "jobs_async"),
    "runs": ("csload.api.calls", "runs"),
    "runs_async": ("csload.api.calls", "runs_async"),
    "CustomVar": ("csload.api.catalog", "CustomVar"),
    "DynamicVarKey": ("csload.api.catalog", "DynamicVarKey"),
    "Field": ("csload.api.catalog", "Field"),
    "Job": ("csload.api.models", "Job"),
    "JobField": ("csload.api.models", "JobField"),
    "JobSpec": ("csload.api.spec", "JobSpec"),
    "Run": ("csload.api.models", "Run"),
    "Problem": ("csload.api.jobspec", "Problem"),
    "BackfillReport": ("csload.backfills.engine", "BackfillReport"),
    "BackfillEvent": ("csload.backfills.engine", "BackfillEvent"),
    "Placement": ("csload.load.placement", "Placement"),
    "backfill": ("csload.backfills.engine", "backfill"),
    "backfill_async": ("csload.backfills.engine", "backfill_async"),
    "Limits": ("csload.config", "Limits"),
    "RetryPolicy": ("csload.config", "RetryPolicy"),
    "Settings": ("csload.config", "Settings"),
    "load_settings": ("csload.config", "load_settings"),
    "sync": ("csload.pipeline.sync", "sync"),
    "sync_async": ("csload.pipeline.sync", "sync_async"),
    "RunOutcome": ("csload.pipeline.report", "RunOutcome"),
    "RunStatus": ("csload.pipeline.report", "RunStatus"),
    "SyncReport": ("csload.pipeline.report", "SyncReport"),
    "StoreStatus": ("csload.load.status", "StoreStatus"),
    "status": ("csload.target", "status"),
    # The names `status` replaced: importable still, no longer listed in __all__.
    "read_status": ("csload.target", "read_status"),
    "read_target_status": ("csload.target", "read_target_status"),
    "connect": ("csload.target", "connect_target"),
    "DoctorReport": ("csload.doctor", "DoctorReport"),
    # Not `doctor`: that name is the package csload.doctor, which importing would rebind.
    "run_doctor": ("csload.doctor", "run_doctor"),
    "run_doctor_async": ("csload.doctor", "run_doctor_async"),
}

# Hidden from static type checkers, which see the real names above: with a visible
# `__getattr__`, a typo such as `csload.synk` would type-check as Any.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        try:
            module_name, attribute = _LAZY[name]
        except KeyError:
            # Also how `from csload import pipeline` falls back to importing the submodule.
            raise AttributeError(f"module 'csload' has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module_name), attribute)
        globals()[name] = value  # once imported, a plain module attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
