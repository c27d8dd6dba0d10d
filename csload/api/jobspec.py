"""Create-job requests checked before they are sent (contract section 4), then created.

The API answers a bad POST /exports with a 400 naming the first problem; csload checks every
rule of the contract locally first, so a user sees *all* the problems at once, each message
naming the rule it breaks, and no request is sent. The rules, with their names:

    name            the job name must not be empty
    format          format is CSV or JSONL
    scope           scope is sessions or views
    frequency       frequency is daily, hourly or once
    deviceLabel     deviceLabel is all, desktop, mobile or tablet
    segmentId       segmentId is a positive integer
    dateRange       a once job needs a date range (from and to); only a once job takes one
    range order     the range's `to` must be after its `from`
    7 days          a once job covers at most 7 days (after widening to whole UTC days)
    retention       `from` must not be older than the data retention (13 months, ASSUMED)
    days over       a once job's days are over: `to` is not after now (csload's own)
    fields          a job exports at least one field
    unknown field   every fieldName is one /exportable-fields lists for the scope
                    (custom_var and dynamic_var are always allowed)
    duplicate field a fieldName appears once, except custom_var and dynamic_var
    customVarPosition  a custom_var has a position from 1 to 20
    dynamicVarKey   a dynamic_var has a key
    same column     two fields cannot end up under the same column name (alias)
    csload column   csload names each field's column after its name in the files, lowercased,
                    every other character than a-z, 0-9 and _ as `_` (csload.load.columns):
                    two fields cannot get one such name, and none may start with `_`

The three before the last are enforced by the simulator beyond the contract's list (the files
would be ambiguous otherwise), so csload checks them too. The last is csload's own: the API
changes no job once it is made, and csload would refuse every run of such a job. "days over"
is csload's own too: whether the API refuses a range not over yet is unknown, and a run made
before its days end holds only the rows so far. When the API
still disagrees, its own 400 is raised as `ApiRequestError` with a message saying csload's
checks had passed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from csload.api.models import DATA_RETENTION_MONTHS, MAX_ID, Job, JobField, normalize_identifier
from csload.api.schemas import SCOPES
from csload.api.spec import JobSpec
from csload.errors import ApiRequestError, InvalidJobSpec
from csload.times import midnight, utcnow

if TYPE_CHECKING:   # the client (and aiohttp) is not needed by what only plans or reads
    from csload.api.client import ExportClient

__all__ = [
    "DATA_RETENTION_MONTHS",
    "InvalidJobSpec",
    "Problem",
    "Rule",
    "check_jobs",
    "create_job",
    "earliest_exportable_day",
    "exportable_names",
    "parse_field",
    "parse_fields",
    "post_checked_job",
    "spec_like",
    "spec_problems",
    "validate_spec",
]

MAX_ONCE_DAYS = 7

FORMATS = ("CSV", "JSONL")
FREQUENCIES = ("daily", "hourly", "once")
DEVICE_LABELS = ("all", "desktop", "mobile", "tablet")
CUSTOM_VAR = "custom_var"
DYNAMIC_VAR = "dynamic_var"
VARIABLES = (CUSTOM_VAR, DYNAMIC_VAR)
CUSTOM_VAR_POSITIONS = range(1, 21)


class Rule:
    """The rules' names, as messages show them."""

    NAME = "the job name must not be empty"
    FORMAT = "format is CSV or JSONL"
    SCOPE = "scope is sessions or views"
    FREQUENCY = "frequency is daily, hourly or once"
    DEVICE = "deviceLabel is all, desktop, mobile or tablet"
    SEGMENT = "segmentId is a positive integer"
    ONCE_RANGE = "a once job needs a date range (from and to)"
    RANGE_ONLY_ONCE = "only a once job takes a date range"
    RANGE_ORDER = "the date range's to must be after its from"
    SPAN = "a once job covers at most 7 days"
    RETENTION = "from must not be older than the data retention"
    DAYS_OVER = "a once job's days must be over"
    FIELDS = "a job exports at least one field"
    UNKNOWN_FIELD = "every fieldName is an exportable field of the scope"
    DUPLICATE_FIELD = "a fieldName appears once (except custom_var and dynamic_var)"
    POSITION = "customVarPosition is between 1 and 20"
    KEY = "a dynamic_var needs a dynamicVarKey"
    COLUMN = "two fields cannot have the same column name"
    CSLOAD_COLUMN = "csload gives each field a column of its own, not starting with '_'"


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: the rule's name and what, in the request, breaks it."""

    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.detail} (rule: {self.rule})"


# -- dates ------------------------------------------------------------------------------------


def _floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(moment: datetime) -> datetime:
    floored = _floor_day(moment)
    return floored if floored == moment else floored + timedelta(days=1)


def earliest_exportable_day(now: datetime, months: int = DATA_RETENTION_MONTHS) -> date:
    """The oldest day a `once` job may start on: the same day `months` months back (clamped to
    the month's end), as the API's retention rule reads (ASSUMED, contract section 7)."""
    now = now.astimezone(UTC)
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    day = now.day
    while True:
        try:
            return date(year, month + 1, day)
        except ValueError:
            day -= 1


# -- fields -----------------------------------------------------------------------------------


def parse_field(text: str) -> JobField:
    """`NAME[:ALIAS]`, `custom_var:POSITION[:ALIAS]` or `dynamic_var:KEY[:ALIAS]`."""
    fields, problems = parse_fields([text])
    if problems:
        raise InvalidJobSpec(problems)
    return fields[0]


def parse_fields(texts: Iterable[str]) -> tuple[list[JobField], list[Problem]]:
    """The `--field` values as JobFields, and the problems of those that cannot be read."""
    fields: list[JobField] = []
    problems: list[Problem] = []
    for text in texts:
        name, _, rest = text.strip().partition(":")
        name = name.strip()
        if not name:
            problems.append(Problem(Rule.UNKNOWN_FIELD, f"--field {text!r} has no field name"))
            continue
        if name == CUSTOM_VAR:
            position_text, _, alias = rest.partition(":")
            position_text = position_text.strip()
            if not position_text.lstrip("-").isdigit():
                problems.append(Problem(
                    Rule.POSITION,
                    f"--field {text!r}: custom_var needs a position, as custom_var:POSITION"
                    "[:ALIAS]" if not position_text else
                    f"--field {text!r}: custom_var position {position_text!r} is not a number"))
                continue
            fields.append(JobField(CUSTOM_VAR, alias_name=alias.strip() or None,
                                   custom_var_position=int(position_text)))
        elif name == DYNAMIC_VAR:
            key, _, alias = rest.partition(":")
            fields.append(JobField(DYNAMIC_VAR, alias_name=alias.strip() or None,
                                   dynamic_var_key=key.strip() or None))
        else:
            fields.append(JobField(name, alias_name=rest.strip() or None))
    return fields, problems


def _field_problems(fields: Sequence[JobField], scope: str,
                    exportable: Collection[str] | None) -> list[Problem]:
    if not fields:
        return [Problem(Rule.FIELDS, "no field given")]
    problems: list[Problem] = []
    seen: set[str] = set()
    columns: dict[str, int] = {}
    loaded: dict[str, int] = {}
    for index, field in enumerate(fields):
        where = f"field {index + 1} ({field.field_name})"
        name = field.field_name
        if (exportable is not None and name not in VARIABLES and name not in exportable):
            problems.append(Problem(
                Rule.UNKNOWN_FIELD,
                f"{name!r} is not an exportable field of scope {scope!r} "
                "(see `csload fields --scope " + scope + "`)"))
        if name in seen and name not in VARIABLES:
            problems.append(Problem(Rule.DUPLICATE_FIELD, f"{name!r} is given more than once"))
        seen.add(name)
        if name == CUSTOM_VAR:
            position = field.custom_var_position
            if position is None:
                problems.append(Problem(Rule.POSITION, f"{where} has no customVarPosition"))
            elif position not in CUSTOM_VAR_POSITIONS:
                problems.append(Problem(Rule.POSITION,
                                        f"{where} has customVarPosition {position}"))
        if name == DYNAMIC_VAR and not field.dynamic_var_key:
            problems.append(Problem(Rule.KEY, f"{where} has no dynamicVarKey"))
        column = field.column_name
        if column in columns:
            problems.append(Problem(
                Rule.COLUMN,
                f"fields {columns[column]} and {index + 1} would both be column {column!r}"))
            continue
        columns[column] = index + 1
        problem = _csload_column_problem(index + 1, column, loaded)
        if problem is not None:
            problems.append(Problem(Rule.CSLOAD_COLUMN, problem))
    return problems


def _csload_column_problem(number: int, column: str, loaded: dict[str, int]) -> str | None:
    """Why csload could not load field `number` (column `column` in the files), given the
    columns of the fields before it (`loaded`: name in csload's tables -> field number)."""
    name = normalize_identifier(column)
    if not name or name.startswith("_"):
        return (f"field {number} would be column {name!r} in csload's tables "
                f"({column!r}): names starting with '_' are csload's own")
    if name in loaded:
        return (f"fields {loaded[name]} and {number} would both be column {name!r} in "
                "csload's tables (names lowercased, every other character than a-z, 0-9 and "
                "_ as '_')")
    loaded[name] = number
    return None


# -- the whole request ------------------------------------------------------------------------


def validate_spec(
    spec: JobSpec,
    *,
    now: datetime,
    exportable: Collection[str] | None = None,
    retention_months: int = DATA_RETENTION_MONTHS,
) -> list[Problem]:
    """Every rule `spec` breaks (empty: it may be sent). `exportable` is the scope's field
    catalog; None skips the unknown-field rule. `now` is the API's idea of the time (aware)."""
    problems: list[Problem] = []
    if not spec.name.strip():
        problems.append(Problem(Rule.NAME, "the name is empty"))
    for value, allowed, what, rule in (
        (spec.format, FORMATS, "format", Rule.FORMAT),
        (spec.scope, SCOPES, "scope", Rule.SCOPE),
        (spec.frequency, FREQUENCIES, "frequency", Rule.FREQUENCY),
        (spec.device_label, DEVICE_LABELS, "deviceLabel", Rule.DEVICE),
    ):
        if value not in allowed:
            detail = f"no {what} given" if not value else f"{what} {value!r} is not allowed"
            problems.append(Problem(rule, detail))
    scope_ok = spec.scope in SCOPES
    if spec.segment_id is not None and (isinstance(spec.segment_id, bool)
                                        or not isinstance(spec.segment_id, int)
                                        or not 1 <= spec.segment_id <= MAX_ID):
        problems.append(Problem(Rule.SEGMENT, f"segmentId {spec.segment_id!r} is not allowed"))
    problems.extend(_range_problems(spec, now, retention_months))
    problems.extend(_field_problems(spec.fields, spec.scope,
                                    exportable if scope_ok else None))
    return problems


def _range_problems(spec: JobSpec, now: datetime, retention_months: int) -> list[Problem]:
    has_range = spec.date_from is not None or spec.date_to is not None
    if spec.frequency != "once":
        if has_range and spec.frequency in FREQUENCIES:
            return [Problem(Rule.RANGE_ONLY_ONCE,
                            f"a {spec.frequency} job was given a date range")]
        return []
    if spec.date_from is None or spec.date_to is None:
        return [Problem(Rule.ONCE_RANGE, "the once job has no " + (
            "date range" if not has_range else "from" if spec.date_from is None else "to"))]
    start, end = spec.date_from, spec.date_to
    if end <= start:
        return [Problem(Rule.RANGE_ORDER, f"to {end:%Y-%m-%d %H:%M} is not after from "
                                          f"{start:%Y-%m-%d %H:%M}")]
    problems = []
    # Exports work in whole UTC days: the limit applies to what will really be exported.
    days = (_ceil_day(end) - _floor_day(start)).days
    if days > MAX_ONCE_DAYS:
        problems.append(Problem(Rule.SPAN, f"the range covers {days} whole days"))
    earliest = earliest_exportable_day(now, retention_months)
    if _floor_day(start) < midnight(earliest):
        problems.append(Problem(
            Rule.RETENTION,
            f"from {start:%Y-%m-%d} is before {earliest}, the earliest exportable day "
            f"({retention_months} months back)"))
    if end > now:
        # Its run exports what exists when it runs: part of a day, loaded as if whole and
        # counted as filling it (QA, 2026-12-08). A backfill leaves such days out the same way.
        problems.append(Problem(
            Rule.DAYS_OVER,
            f"to {end:%Y-%m-%d %H:%M} UTC is after now ({now.astimezone(UTC):%Y-%m-%d %H:%M} "
            "UTC): its run would export part of the range, the rows so far"))
    return problems


async def exportable_names(client: ExportClient, scope: str) -> frozenset[str]:
    """The field names /exportable-fields lists for `scope`."""
    return frozenset(field.name for field in await client.exportable_fields(scope))


async def spec_problems(
    client: ExportClient,
    specs: Iterable[JobSpec],
    *,
    now: datetime | None = None,
    retention_months: int = DATA_RETENTION_MONTHS,
) -> list[Problem]:
    """Every rule create-job requests break, each problem once (empty: they may be sent);
    nothing is sent but the reads of each scope's field catalog (once per scope). `now`: the
    API's idea of the time (default: the clock's). The one check of a job before it is
    created: `check_jobs` raises on it, `csload.check_job` answers it."""
    now = now or utcnow()
    catalogs: dict[str, frozenset[str]] = {}
    problems: list[Problem] = []
    for spec in specs:
        if spec.scope in SCOPES and spec.scope not in catalogs:
            catalogs[spec.scope] = await exportable_names(client, spec.scope)
        found = validate_spec(spec, now=now, exportable=catalogs.get(spec.scope),
                              retention_months=retention_months)
        for problem in found:
            # Windows of one backfill break the same rule alike: said once.
            if problem not in problems:
                problems.append(problem)
    return problems


async def check_jobs(
    client: ExportClient,
    specs: Iterable[JobSpec],
    *,
    now: datetime | None = None,
    retention_months: int = DATA_RETENTION_MONTHS,
    extra_problems: Sequence[Problem] = (),
) -> None:
    """Check create-job requests before any is sent (`spec_problems`): raise InvalidJobSpec
    listing every rule they break, with `extra_problems` (the `--field` texts that could not
    be read, say) first. What `create_job` and a backfill (all its windows' jobs at once)
    check."""
    problems = [*extra_problems, *await spec_problems(client, specs, now=now,
                                                      retention_months=retention_months)]
    if problems:
        raise InvalidJobSpec(problems)


async def create_job(
    client: ExportClient,
    spec: JobSpec,
    *,
    now: datetime | None = None,
    retention_months: int = DATA_RETENTION_MONTHS,
) -> Job:
    """Check `spec` against every rule (`check_jobs`), then create it (`post_checked_job`).

    Raises InvalidJobSpec without sending the create request when a rule is broken, and
    ApiRequestError (saying the local checks passed) when the API refuses it anyway.
    """
    await check_jobs(client, [spec], now=now, retention_months=retention_months)
    return await post_checked_job(client, spec)


async def post_checked_job(client: ExportClient, spec: JobSpec) -> Job:
    """POST a spec `check_jobs` passed (a backfill checks all its jobs before creating the
    first); a 400 says the API disagrees with csload's checks."""
    try:
        return await client.create_job(spec)
    except ApiRequestError as exc:
        if exc.status != 400:
            raise
        raise ApiRequestError(
            f"the API refused job {spec.name!r} although csload's own checks passed: {exc}",
            status=exc.status, error_code=exc.error_code, method=exc.method,
            path=exc.path) from None


def spec_like(job: Job, *, name: str, frequency: str, date_from: datetime | None = None,
              date_to: datetime | None = None, format: str | None = None,
              device_label: str | None = None, segment_id: int | None = None,
              more_fields: Sequence[JobField] = ()) -> JobSpec:
    """A JobSpec copying `job`'s fields and filters (format, device, segment) unless given,
    with `more_fields` after the job's own (a field it has already breaks the duplicate
    rule, as any repeated field does)."""
    return JobSpec(
        name=name, format=format or job.format, scope=job.scope, frequency=frequency,
        fields=(*job.fields, *more_fields), device_label=device_label or job.device_label or "all",
        segment_id=segment_id if segment_id is not None else job.segment_id,
        date_from=date_from, date_to=date_to)
