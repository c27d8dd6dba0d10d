"""The nine Export API endpoints (contract section 4), over the project state.

Lists are plain JSON lists without totals: `page` is 1-based, `limit` defaults to 20 and is
clamped to 100. Jobs sort by id, runs by start date then id; the default order is ASC for jobs
and DESC (newest first) for runs, `order=ASC|DESC` overrides it.

The section 9 variants (`Variants`, all live) change what the contract guessed: the page size
(`page_size` clamps `limit` lower), the runs' default order (`runs_oldest_first_by_default`),
bare dates refused by /dynamic-var-keys (`dynamic_var_keys_timestamps_only`), customVarPosition
read back as a string (`custom_var_position_as_string`), the create answer (`create_response`)
and /exports/successful-runs items without jobId (`successful_runs_without_job_id`). The
over-limit answer is the middleware's (limits.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from csload.api.schemas import SCOPES, load_schema
from csload.simulator import responses
from csload.simulator.auth import token_response
from csload.simulator.config import Variants
from csload.simulator.model import (
    FORMATS,
    FREQUENCIES,
    JOB_STATES,
    RUN_STATES,
    JobRecord,
    RunRecord,
)
from csload.simulator.storage import part_path
from csload.simulator.validation import ValidationError, parse_instant, parse_job_request
from csload.simulator.variables import custom_var_definitions, dynamic_var_keys

if TYPE_CHECKING:
    from csload.simulator.core import Simulator

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CREATE_RESPONSES = ("job", "id_object", "bare_id")
T = TypeVar("T")


class ApiProblem(Exception):
    """An error answer, raised from deep in a handler (see `guarded`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _bad(message: str) -> ApiProblem:
    return ApiProblem(400, "INVALID_PARAMETER", message)


def iso(moment: datetime | None) -> str | None:
    """The API's timestamp form: 2026-11-14T00:00:00.000Z."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def coarse_type(source_type: str) -> str:
    """The documentation's type names (`Integer`, `Float`, `String`, `Array(String)`) for an
    export-engine type: what the field references print (contract section 9, point 5)."""
    if source_type.startswith("Array("):
        return "Array(String)"
    inner = source_type.removeprefix("Nullable(").removesuffix(")")
    if inner.startswith(("UInt", "Int")):
        return "Integer"
    return "Float" if inner.startswith("Float") else "String"


def job_json(job: JobRecord, now: datetime, variants: Variants) -> dict[str, Any]:
    frequency: Any = {"value": job.frequency}
    if job.date_from is not None:
        frequency["dateRange"] = {"from": iso(job.date_from), "to": iso(job.date_to)}
    fields = [f.to_api() for f in job.fields]
    if variants.custom_var_position_as_string:
        # The documentation's newer layout types customVarPosition as a string.
        for item in fields:
            if "customVarPosition" in item:
                item["customVarPosition"] = str(item["customVarPosition"])
    return {
        "jobId": job.job_id,
        "name": job.name,
        "format": job.format,
        "scope": job.scope,
        "frequency": job.frequency if variants.bare_frequency else frequency,
        "state": job.state(now),
        "deviceLabel": job.device_label,
        "segmentId": job.segment_id,
        "fields": fields,
        "createdAt": iso(job.created_at),
    }


def created_json(job: JobRecord, now: datetime, variants: Variants) -> Any:
    """What POST /exports answers: the job, {"jobId": n} or the bare id (create_response)."""
    shape = variants.create_response
    if shape == "job":
        return job_json(job, now, variants)
    if shape == "id_object":
        return {"jobId": job.job_id}
    # responses.success stringifies ids only inside objects: a bare one is done here.
    return str(job.job_id) if variants.string_ids else job.job_id


def run_json(run: RunRecord, now: datetime) -> dict[str, Any]:
    state = run.state(now)
    return {
        "jobRunId": run.run_id,
        "jobId": run.job_id,
        "state": state,
        "startDate": iso(run.start),
        "endDate": iso(run.end),
        "createdAt": iso(run.created_at),
        "finishedAt": iso(run.finished_at) if state in ("SUCCESS", "FAILURE") else None,
    }


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise _bad(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def _paginate(request: web.Request, items: Sequence[T], variants: Variants) -> list[T]:
    page = _int_param(request, "page", 1)
    # A server with a smaller page size clamps `limit` to it, silently: the page is then
    # shorter than asked although more follow (contract section 9, point 6).
    cap = variants.page_size or MAX_LIMIT
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT), cap)
    return list(items[(page - 1) * limit: page * limit])


def _descending(request: web.Request, default: str) -> bool:
    order = request.query.get("order", default).upper()
    if order not in ("ASC", "DESC"):
        raise _bad(f"order must be ASC or DESC, got {request.query.get('order')!r}")
    return order == "DESC"


def _filter_value(request: web.Request, name: str, allowed: Sequence[str]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    for value in allowed:
        if value.lower() == raw.lower():
            return value
    raise _bad(f"{name} {raw!r} is not one of {', '.join(allowed)}")


def _sorted_runs(request: web.Request, runs: list[RunRecord],
                 variants: Variants) -> list[RunRecord]:
    default = "ASC" if variants.runs_oldest_first_by_default else "DESC"
    return sorted(runs, key=lambda r: (r.start, r.run_id),
                  reverse=_descending(request, default))


class ApiHandlers:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def _now(self) -> datetime:
        now = self.sim.clock.now()
        self.sim.state.sync(now)
        return now

    def _ok(self, payload: Any) -> web.Response:
        return responses.success(payload, self.sim.config.variants)

    def _job_or_404(self, request: web.Request) -> JobRecord:
        raw = request.match_info["job_id"]
        job = self.sim.state.job(int(raw)) if raw.isdigit() else None
        if job is None:
            raise ApiProblem(404, "NOT_FOUND", f"Job {raw} not found")
        return job

    def base_url(self, request: web.Request) -> str:
        return self.sim.base_url or str(request.url.origin())

    async def token(self, request: web.Request) -> web.Response:
        endpoint = self.base_url(request) + self.sim.config.api_prefix
        response, issued = await token_response(request, self.sim.config, self.sim.tokens,
                                                self.sim.clock.now(), endpoint)
        if issued:
            self.sim.stats.add("tokens_issued")
        return response

    async def create_job(self, request: web.Request) -> web.Response:
        now = self._now()
        try:
            body = await request.json()
        except ValueError:
            body = None
        try:
            draft = parse_job_request(body, now, self.sim.config.data_retention_months)
        except ValidationError as exc:
            return responses.error(400, "INVALID_PARAMETER", str(exc))
        shape = self.sim.config.variants.create_response
        if shape not in CREATE_RESPONSES:
            # A test's typo, said before a job is created rather than after.
            return responses.error(500, "SIMULATOR_MISCONFIGURED",
                                   f"Variants.create_response {shape!r} is not one of "
                                   f"{', '.join(CREATE_RESPONSES)}")
        job = self.sim.state.create_job(draft, now)
        return self._ok(created_json(job, now, self.sim.config.variants))

    async def list_jobs(self, request: web.Request) -> web.Response:
        now = self._now()
        wanted = {
            "state": _filter_value(request, "state", JOB_STATES),
            "format": _filter_value(request, "format", FORMATS),
            "frequency": _filter_value(request, "frequency", FREQUENCIES),
            "scope": _filter_value(request, "scope", SCOPES),
        }
        jobs = [
            j for j in self.sim.state.all_jobs()
            if (wanted["state"] is None or j.state(now) == wanted["state"])
            and (wanted["format"] is None or j.format == wanted["format"])
            and (wanted["frequency"] is None or j.frequency == wanted["frequency"])
            and (wanted["scope"] is None or j.scope == wanted["scope"])
        ]
        jobs.sort(key=lambda j: j.job_id, reverse=_descending(request, "ASC"))
        variants = self.sim.config.variants
        return self._ok([job_json(j, now, variants) for j in _paginate(request, jobs, variants)])

    async def get_job(self, request: web.Request) -> web.Response:
        now = self._now()
        job = self._job_or_404(request)
        return self._ok(job_json(job, now, self.sim.config.variants))

    async def list_runs(self, request: web.Request) -> web.Response:
        now = self._now()
        job = self._job_or_404(request)
        state = _filter_value(request, "state", RUN_STATES)
        runs = [r for r in self.sim.state.job_runs(job.job_id)
                if state is None or r.state(now) == state]
        variants = self.sim.config.variants
        page = _paginate(request, _sorted_runs(request, runs, variants), variants)
        return self._ok([run_json(r, now) for r in page])

    async def successful_runs(self, request: web.Request) -> web.Response:
        now = self._now()
        runs = [r for r in self.sim.state.all_runs() if r.state(now) == "SUCCESS"]
        variants = self.sim.config.variants
        items = [run_json(r, now)
                 for r in _paginate(request, _sorted_runs(request, runs, variants), variants)]
        if variants.successful_runs_without_job_id:
            for item in items:
                del item["jobId"]
        return self._ok(items)

    async def get_run(self, request: web.Request) -> web.Response:
        now = self._now()
        job = self._job_or_404(request)
        raw = request.match_info["run_id"]
        run = self.sim.state.run(int(raw)) if raw.isdigit() else None
        if run is None or run.job_id != job.job_id:
            return responses.error(404, "NOT_FOUND", f"Run {raw} of job {job.job_id} not found")
        payload = run_json(run, now)
        payload["files"] = await self._files(request, job, run, now)
        return self._ok(payload)

    async def _files(self, request: web.Request, job: JobRecord, run: RunRecord,
                     now: datetime) -> list[dict[str, Any]]:
        if not run.has_files(now):
            return []
        count = await self.sim.part_count_async(run.run_id)
        variants = self.sim.config.variants
        expires = int((now + timedelta(seconds=self.sim.config.url_lifetime)).timestamp())
        base = self.sim.config.storage_base_url or self.base_url(request)
        files = []
        for part_id in range(1, count + 1):
            path = part_path(self.sim.config.project_id, job.job_id, run.run_id, part_id,
                             job.format)
            entry: dict[str, Any] = {}
            if not variants.files_without_part_id:
                entry["partId"] = part_id
            entry["url"] = self.sim.signer.sign(base, path, expires)
            if not variants.files_without_expiration:
                entry["expirationDate"] = iso(
                    run.files_expire_at(self.sim.config.file_retention_days))
            files.append(entry)
        return files

    async def exportable_fields(self, request: web.Request) -> web.Response:
        scope = request.query.get("scope")
        if scope not in SCOPES:
            return responses.error(400, "INVALID_PARAMETER",
                                   f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        coarse = self.sim.config.variants.coarse_catalog_types
        return self._ok([
            {"name": f.name, "type": coarse_type(f.source_type) if coarse else f.source_type,
             "description": f.description}
            for f in load_schema(scope).fields
        ])

    async def custom_vars(self, request: web.Request) -> web.Response:
        return self._ok([{"position": p, "name": n} for p, n in custom_var_definitions()])

    async def dynamic_var_keys(self, request: web.Request) -> web.Response:
        strict = self.sim.config.variants.dynamic_var_keys_timestamps_only
        try:
            start = parse_instant(request.query.get("from"), "from", timestamps_only=strict)
            end = parse_instant(request.query.get("to"), "to", timestamps_only=strict)
        except ValidationError as exc:
            return responses.error(400, "INVALID_PARAMETER", str(exc))
        if end <= start:
            return responses.error(400, "INVALID_PARAMETER", "to must be after from")
        keys = dynamic_var_keys(start.date(), (end - timedelta(microseconds=1)).date())
        return self._ok([{"key": k, "type": t} for k, t in keys])


def guarded(handler: Callable[[web.Request], Awaitable[web.Response]],
            ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler, with ApiProblem turned into the API's error answer."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ApiProblem as exc:
            return responses.error(exc.status, exc.code, str(exc))

    return wrapped
