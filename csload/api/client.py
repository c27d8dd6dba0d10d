"""The async client of the Contentsquare Data Export API.

Public surface::

    async with ExportClient(settings) as client:      # or ExportClient(settings, session=...)
        await client.list_jobs(*, state=None, format=None, frequency=None, scope=None,
                               order=None, keep_unreadable=False) -> list[Job]
        await client.get_job(job_id) -> Job
        await client.create_job(spec: JobSpec) -> Job
        await client.list_runs(job_id, *, state=None, order=None,
                               keep_unreadable=False) -> list[Run]
        await client.successful_runs() -> list[Run]
        await client.get_run(job_id, run_id) -> Run          # .parts: the files, never None
        await client.exportable_fields(scope) -> list[Field]
        await client.custom_vars() -> list[CustomVar]
        await client.dynamic_var_keys(date_from, date_to) -> list[DynamicVarKey]
        client.observed -> ClientObservations       # what was learnt of the service

The endpoints are here; the connection they share (token, session, limits, retries,
errors) is csload.api.connection.ApiConnection, whose docstring says how it behaves.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

from csload.api import envelope
from csload.api.catalog import CustomVar, DynamicVarKey, Field
from csload.api.connection import ApiConnection
from csload.api.lookup import runs_with_jobs
from csload.api.models import Job, Run, created_job, one_per_id
from csload.api.spec import JobSpec
from csload.errors import ApiRequestError
from csload.times import api_text

__all__ = ["ExportClient"]


class ExportClient(ApiConnection):
    """An async client of the Export API for one project; use it as an async context manager."""

    # Where this server keeps the custom variables, once known (`custom_vars`).
    _custom_vars_path: str | None = None

    # -- endpoints ---------------------------------------------------------------------------

    async def list_jobs(
        self,
        *,
        state: str | None = None,
        format: str | None = None,
        frequency: str | None = None,
        scope: str | None = None,
        order: str | None = None,
        keep_unreadable: bool = False,
    ) -> list[Job]:
        """With `keep_unreadable`, a job that cannot be read whole is listed with
        `Job.unreadable` set (for a sync, which refuses that job alone)."""
        # `order` always: the server's default order is unknown (contract section 9).
        params = _params(state=state, format=format, frequency=frequency, scope=scope,
                         order=order or "ASC")
        items = await self._read_list("/exports", params, "list jobs")
        return one_per_id([Job.listed(item) if keep_unreadable else Job.from_api(item)
                           for item in items], strict=not keep_unreadable)

    async def get_job(self, job_id: int) -> Job:
        raw = await self._call("GET", f"/exports/{int(job_id)}")
        return Job.from_api(envelope.payload_object(raw, f"job {job_id}"))

    async def create_job(self, spec: JobSpec) -> Job:
        raw = await self._call("POST", "/exports", json_body=spec.to_api(), idempotent=False)
        created = created_job(envelope.payload(raw, "create job"))
        # Only the id came back: read the job (a GET, safe to retry, unlike the create).
        return created if isinstance(created, Job) else await self.get_job(created)

    async def list_runs(
        self, job_id: int, *, state: str | None = None, order: str | None = None,
        keep_unreadable: bool = False,
    ) -> list[Run]:
        """The job's runs; with `keep_unreadable`, a run whose times or files cannot be read
        is listed with `Run.unreadable` set (for a sync, which fails that run alone), where
        it is otherwise an ApiError naming the job, the run and the key."""
        items = await self._read_list(f"/exports/{int(job_id)}/runs",
                                      _params(state=state, order=order or "DESC"),
                                      f"runs of job {job_id}")
        if keep_unreadable:
            return [Run.listed(item, job_id) for item in items]
        return [Run.from_api(item, job_id=job_id) for item in items]

    async def successful_runs(self) -> list[Run]:
        """Every job's successful runs; a run whose item lacks jobId is looked up (lookup.py)."""
        items = await self._read_list("/exports/successful-runs", {}, "successful runs")
        return await runs_with_jobs(items, self)

    async def get_run(self, job_id: int, run_id: int) -> Run:
        raw = await self._call("GET", f"/exports/{int(job_id)}/runs/{int(run_id)}")
        run = Run.from_api(envelope.payload_object(raw, f"job {job_id}, run {run_id}"),
                           job_id=job_id)
        # The detail endpoint is the one that lists files: no "files" means none.
        return run if run.parts is not None else dataclasses.replace(run, parts=())

    async def exportable_fields(self, scope: str) -> list[Field]:
        raw = await self._call("GET", "/exportable-fields", params={"scope": scope})
        return [Field.from_api(item)
                for item in envelope.payload_list(raw, f"exportable fields of {scope}")]

    async def custom_vars(self) -> list[CustomVar]:
        """The project's custom variables, from /custom-vars or, failing that, /custom_vars."""
        paths = ([self._custom_vars_path] if self._custom_vars_path
                 else ["/custom-vars", "/custom_vars"])
        for index, path in enumerate(paths):
            try:
                raw = await self._call("GET", path)
            except ApiRequestError as exc:
                if exc.status == 404 and index + 1 < len(paths):
                    continue
                raise
            self._custom_vars_path = path
            return [CustomVar.from_api(item) for item in envelope.payload_list(raw, "custom vars")]
        raise AssertionError("unreachable")

    async def dynamic_var_keys(
        self, date_from: date | datetime, date_to: date | datetime
    ) -> list[DynamicVarKey]:
        """Keys seen in [date_from, date_to): the end is exclusive, like every API window."""
        # Full timestamps, dates too: a server may refuse a bare date (contract section 9).
        params = {"from": api_text(date_from), "to": api_text(date_to)}
        raw = await self._call("GET", "/dynamic-var-keys", params=params)
        return [DynamicVarKey.from_api(item)
                for item in envelope.payload_list(raw, "dynamic var keys")]


def _params(**values: str | None) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}
