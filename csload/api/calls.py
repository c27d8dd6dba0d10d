"""What the project holds on the Export API, as library calls: the CLI's `jobs`, `jobs show`,
`runs`, `fields`, `custom-vars`, `dynamic-vars` and `jobs create` are a skin over these.

    jobs(*, state=None, scope=None)            -> list[Job]       the project's export jobs
    job(job_id)                                -> Job             one job, with its fields
    runs(job_id, *, state=None, files=False)   -> list[Run]       a job's runs, newest first
    fields(scope)                              -> list[Field]     what a scope can export
    custom_vars()                              -> list[CustomVar] the project's custom variables
    dynamic_vars(date_from, date_to)           -> list[DynamicVarKey]  keys seen on those days
    check_job(spec)                            -> list[Problem]   what create_job would refuse
    create_job(spec)                           -> Job             a new job, checked first

Each is blocking (it works inside a running event loop too, a notebook's, from a thread of its
own) and has an `_async` twin with the same arguments. Every call also takes `settings`
(keyword; default `load_settings()`: the environment and ./csload.toml, read at the call).
Arguments are checked before anything is sent (ConfigError naming the argument); the API's
errors are the client's (csload.errors: AuthError, ApiRequestError, ApiUnavailable).

A call opens one client (one connection pool, one token) and closes it before it returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from functools import partial
from typing import TypeVar

from csload.api.catalog import CustomVar, DynamicVarKey, Field
from csload.api.checks import check_day, check_job_ids, check_scope
from csload.api.client import ExportClient
from csload.api.jobspec import Problem, spec_problems
from csload.api.jobspec import create_job as create_checked
from csload.api.models import Job, Run
from csload.api.spec import JobSpec
from csload.concurrency import run_blocking
from csload.config import Settings, settings_or_default
from csload.errors import ConfigError

T = TypeVar("T")


async def _with_client(settings: Settings | None,
                       action: Callable[[ExportClient], Awaitable[T]]) -> T:
    async with ExportClient(settings_or_default(settings)) as client:
        return await action(client)


def _blocking(call: Callable[[], Awaitable[T]]) -> T:
    return run_blocking(call, thread_name="csload-api")


def _job_id(value: object) -> int:
    return check_job_ids([value], name="job_id")[0]


def _required_scope(scope: object) -> str:
    checked = check_scope(scope)
    if checked is None:
        raise ConfigError("scope must be one of sessions, views, got None")
    return checked


def _day(value: object, name: str) -> date:
    checked = check_day(value, name)
    if checked is None:
        raise ConfigError(f"{name} must be a day (a datetime.date or 'YYYY-MM-DD'), got None")
    return checked


# -- jobs ---------------------------------------------------------------------------------------


async def jobs_async(*, state: str | None = None, scope: str | None = None,
                     settings: Settings | None = None) -> list[Job]:
    """The project's export jobs, oldest first; only those in `state` (ACTIVE, COMPLETED, ...)
    or of `scope` ("sessions" or "views") when given. A job csload cannot read whole is
    listed without its fields, `Job.unreadable` saying why (a sync refuses it)."""
    checked = check_scope(scope)
    return await _with_client(settings, lambda c: c.list_jobs(state=state, scope=checked,
                                                              keep_unreadable=True))


def jobs(*, state: str | None = None, scope: str | None = None,
         settings: Settings | None = None) -> list[Job]:
    """Blocking `jobs_async`."""
    return _blocking(partial(jobs_async, state=state, scope=scope, settings=settings))


async def job_async(job_id: int, *, settings: Settings | None = None) -> Job:
    """One export job, with its fields (ApiRequestError, status 404, when there is none)."""
    checked = _job_id(job_id)
    return await _with_client(settings, lambda c: c.get_job(checked))


def job(job_id: int, *, settings: Settings | None = None) -> Job:
    """Blocking `job_async`."""
    return _blocking(partial(job_async, job_id, settings=settings))


# -- runs ---------------------------------------------------------------------------------------


async def runs_async(job_id: int, *, state: str | None = None, files: bool = False,
                     settings: Settings | None = None) -> list[Run]:
    """The runs of an export job, newest first; only those in `state` (SUCCESS, FAILURE, ...)
    when given. With `files`, each successful run is read in detail (one request per run) so
    that its `parts` lists its files; otherwise `parts` is None (the list does not say)."""
    checked = _job_id(job_id)

    async def fetch(client: ExportClient) -> list[Run]:
        found = await client.list_runs(checked, state=state, order="DESC")
        if not files:
            return found
        # One after the other: a job can have hundreds of runs, and the API limits the project.
        return [await client.get_run(checked, run.run_id) if run.state == "SUCCESS" else run
                for run in found]

    return await _with_client(settings, fetch)


def runs(job_id: int, *, state: str | None = None, files: bool = False,
         settings: Settings | None = None) -> list[Run]:
    """Blocking `runs_async`."""
    return _blocking(partial(runs_async, job_id, state=state, files=files, settings=settings))


# -- fields and variables -----------------------------------------------------------------------


async def fields_async(scope: str, *, settings: Settings | None = None) -> list[Field]:
    """The fields a job of `scope` ("sessions" or "views") can export, as the API lists them."""
    checked = _required_scope(scope)
    return await _with_client(settings, lambda c: c.exportable_fields(checked))


def fields(scope: str, *, settings: Settings | None = None) -> list[Field]:
    """Blocking `fields_async`."""
    return _blocking(partial(fields_async, scope, settings=settings))


async def custom_vars_async(*, settings: Settings | None = None) -> list[CustomVar]:
    """The project's custom variables (a job exports one as the field custom_var:POSITION)."""
    return await _with_client(settings, lambda c: c.custom_vars())


def custom_vars(*, settings: Settings | None = None) -> list[CustomVar]:
    """Blocking `custom_vars_async`."""
    return _blocking(partial(custom_vars_async, settings=settings))


async def dynamic_vars_async(date_from: date | str, date_to: date | str, *,
                             settings: Settings | None = None) -> list[DynamicVarKey]:
    """The dynamic variable keys seen from the day `date_from` to the day `date_to`, both
    included (a `datetime.date` or "YYYY-MM-DD"; a job exports one as dynamic_var:KEY)."""
    first, last = _day(date_from, "date_from"), _day(date_to, "date_to")
    if last < first:
        raise ConfigError(f"date_to {last} is before date_from {first}: no day between them")
    # The API's window ends before its `to`: the day after the last one asked for.
    return await _with_client(settings,
                              lambda c: c.dynamic_var_keys(first, last + timedelta(days=1)))


def dynamic_vars(date_from: date | str, date_to: date | str, *,
                 settings: Settings | None = None) -> list[DynamicVarKey]:
    """Blocking `dynamic_vars_async`."""
    return _blocking(partial(dynamic_vars_async, date_from, date_to, settings=settings))


# -- new jobs -----------------------------------------------------------------------------------


def _job_spec(spec: object) -> JobSpec:
    if not isinstance(spec, JobSpec):
        raise ConfigError(f"spec: expected a csload.JobSpec, got {type(spec).__name__}")
    return spec


async def check_job_async(spec: JobSpec, *, settings: Settings | None = None) -> list[Problem]:
    """Every rule of the API `spec` breaks, each problem once, fields against the scope's
    catalogue included: exactly what `create_job` checks before it sends anything (empty: it
    would send `spec`). Reads the scope's field catalogue; creates nothing."""
    checked = _job_spec(spec)
    return await _with_client(settings, lambda c: spec_problems(c, [checked]))


def check_job(spec: JobSpec, *, settings: Settings | None = None) -> list[Problem]:
    """Blocking `check_job_async`."""
    return _blocking(partial(check_job_async, spec, settings=settings))


async def create_job_async(spec: JobSpec, *, settings: Settings | None = None) -> Job:
    """Create the job `spec` describes (`csload jobs create` is a skin over this). The rules
    `check_job` answers are checked first (the same check): a broken one raises InvalidJobSpec
    listing them all, and nothing is sent."""
    checked = _job_spec(spec)
    return await _with_client(settings, lambda c: create_checked(c, checked))


def create_job(spec: JobSpec, *, settings: Settings | None = None) -> Job:
    """Blocking `create_job_async`."""
    return _blocking(partial(create_job_async, spec, settings=settings))
