"""The `jobs` and `fields` checks: the project's export jobs, and each scope's field catalog
against the fields csload's schemas know (a field they do not know loads as text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from csload.api.catalog import Field
from csload.api.client import ExportClient
from csload.api.models import Job
from csload.api.schemas import SCOPES, load_schema
from csload.doctor.report import Check, Verdict, clean
from csload.errors import ConfigError, CsloadError
from csload.load.columns import NEW_ALIASES, VARIABLE_FIELDS, layout_problem

FORMATS = ("CSV", "JSONL")


def live_jobs(jobs: Sequence[Job]) -> list[Job]:
    return [job for job in jobs if (job.state or "").upper() != "DELETED"]


def unknown_fields(scope: str, names: Sequence[str]) -> list[str]:
    """The names csload's schema of `scope` does not know (variables excepted)."""
    schema = load_schema(scope)
    return [name for name in names if name not in schema and name not in VARIABLE_FIELDS]


def _shown(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(clean(n, 80) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _runs(count: int) -> str:
    return f"{count} successful run{'s' if count != 1 else ''}"


def check_jobs(check: Check, jobs: Sequence[Job], runs: Mapping[int, int],
               run_errors: Mapping[int, str], reserved: Mapping[str, str] | None = None,
               ) -> None:
    """One line per job; FAIL for a job csload cannot load or whose runs cannot be listed,
    WARN for fields it loads as text. `runs`: successful runs per job; `reserved`: the
    column names the target keeps (a lake's `date`)."""
    live = live_jobs(jobs)
    check.data = {"jobs": []}
    broken = [f"job {job_id}: its runs cannot be listed: {error}"
              for job_id, error in run_errors.items()]
    texts: list[str] = []
    kinds: set[str] = set()   # of the problems: what to do differs
    for job in live:
        problem = None
        unknown: list[str] = []
        try:
            if job.unreadable:
                kinds.add("unreadable")
                raise ConfigError(f"its definition cannot be read: {job.unreadable}")
            if job.format not in FORMATS:
                kinds.add("format")
                raise ConfigError(f"format {job.format!r} is neither CSV nor JSONL")
            unloadable = layout_problem(job, reserved)
            if unloadable is not None:
                kinds.add("columns")
                raise ConfigError(unloadable)
            unknown = unknown_fields(job.scope, [f.field_name for f in job.fields])
        except ConfigError as exc:
            problem = clean(exc)
            broken.append(f"job {job.job_id}: {problem}")
        line = (f"{job.job_id} {clean(job.name, 60)}: {clean(job.scope)} / {clean(job.format)} "
                f"/ {clean(job.frequency)} / {clean(job.state or '?')}, {len(job.fields)} "
                f"fields, {_runs(runs.get(job.job_id, 0))}")
        if unknown:
            line += f"; loaded as text: {_shown(unknown)}"
            texts.append(f"job {job.job_id}")
        if problem:
            line += f"; cannot be loaded: {problem}"
        check.details.append(line)
        check.data["jobs"].append({
            "jobId": job.job_id, "name": clean(job.name), "scope": clean(job.scope),
            "format": clean(job.format), "frequency": clean(job.frequency),
            "state": clean(job.state) if job.state else None, "fields": len(job.fields),
            "successfulRuns": runs.get(job.job_id, 0),
            "unknownFields": [clean(n) for n in unknown], "problem": problem})
    count = f"{len(live)} job{'s' if len(live) != 1 else ''}"
    if broken:
        hints = ["a sync refuses such a job and loads its other jobs",
                 *([NEW_ALIASES] if "columns" in kinds else []),
                 *(["a sync skips a job of another format: csload loads CSV and JSONL jobs"]
                   if "format" in kinds else []),
                 *(["a definition csload cannot read: report it with `csload doctor --save "
                    "DIR` attached"] if "unreadable" in kinds else [])]
        check.set(Verdict.FAIL, f"{count}; csload cannot load {len(broken)} of them: "
                  f"{'; '.join(broken)}", "; ".join(hints))
    elif not live:
        check.set(Verdict.WARN, "the project has no export job: nothing to load yet",
                  "create one in the Contentsquare console, or with `csload jobs create`")
    elif texts:
        check.set(Verdict.WARN, f"{count}; {', '.join(texts)} export fields csload's schemas "
                  "do not know: they load as text (VARCHAR)")
    else:
        check.set(Verdict.OK, f"{count}, every field known to csload")


async def check_fields(check: Check, client: ExportClient) -> None:
    """GET /exportable-fields per scope; which fields csload's schemas do not know."""
    check.data = {}
    warnings: list[str] = []
    for scope in SCOPES:
        try:
            catalog: list[Field] = await client.exportable_fields(scope)
        except CsloadError as exc:
            check.details.append(f"{scope}: the catalog cannot be read: {clean(exc)}")
            warnings.append(f"{scope} catalog unreadable")
            check.data[scope] = {"error": clean(exc)}
            continue
        names = [f.name for f in catalog]
        unknown = unknown_fields(scope, names)
        missing = [n for n in load_schema(scope).names if n not in names]
        types = sorted({clean(f.type, 40) for f in catalog if f.type})
        check.data[scope] = {"fields": len(names), "unknown": [clean(n) for n in unknown],
                             "notListed": missing, "types": types}
        line = f"{scope}: {len(names)} fields"
        if unknown:
            line += f"; not in csload's schema (they would load as text): {_shown(unknown)}"
            warnings.append(f"{len(unknown)} {scope} field(s) unknown to csload")
        if missing:
            line += f"; csload knows {len(missing)} more the catalog does not list: " \
                    f"{_shown(missing, 6)}"
        check.details.append(line)
        if types:
            check.details.append(f"{scope} types as the catalog names them: {_shown(types, 20)}")
    if warnings:
        check.set(Verdict.WARN, "; ".join(warnings),
                  "a job that exports a field csload does not know loads it as text; tell the "
                  "csload maintainers (doctor --save keeps the catalog)")
    else:
        check.set(Verdict.OK, "every catalog field is known to csload's schemas")
