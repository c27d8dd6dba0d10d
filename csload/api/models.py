"""Typed, frozen views of the Export API's objects, tolerant of the variants the contract lists.

Every `from_api` accepts ids as integers or numeric strings, `frequency` as an object or a bare
string, and files without `partId` or `expirationDate` (contract sections 3 and 4); also
`customVarPosition` as an integer or a string, and a create answer that is the job, an object
with only its id, or the bare id (section 9, points 8 and 9: `created_job`).

Every number is checked against its range before use (issue 16: an API answer is untrusted).
Ids become file names (`part-00001`), UBIGINT and BIGINT columns of the ledger and the lake,
SQL parameters and dict keys: job, run, part and segment ids are integers from 1 to 2^63 - 1
(what a BIGINT holds; files without partId are numbered from 1, so part ids start at 1 too);
custom variable positions from 1 to 20 (contract section 4). A run detail listing the same part
twice is refused too (one of the two would be silently dropped). Out of range is an ApiError
naming where (job, run, file) and the value, shortened: the run fails alone in a sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from csload.errors import ApiError, part_label
from csload.redact import redact_text, redact_url
from csload.times import api_text_or_none

Json = dict[str, Any]

# A project id as text (a UInt32, contract section 8), from a token answer or a target's ledger:
# ASCII digits only (str.isdigit takes '²', which int() refuses), and few enough that int()
# never meets Python's limit on long numbers.
PROJECT_ID_TEXT = re.compile(r"^[0-9]{1,10}$")

# The API's retention, as the contract states it: the facts a sync and a backfill both plan by.
# A run's files are kept this long after it finished (contract section 5): an older run must
# be exported again.
FILE_RETENTION = timedelta(days=7)
# ASSUMED (contract section 7): how far back a `once` job may reach.
DATA_RETENTION_MONTHS = 13


# BIGINT's largest value: every id column of the ledger and the lake holds 1 .. MAX_ID.
MAX_ID = 2**63 - 1
IDS = range(1, MAX_ID + 1)
# Contract section 4: a custom variable's position is between 1 and 20.
CUSTOM_VAR_POSITIONS = range(1, 21)

# ASCII digits only: str.isdigit() accepts "²" and other digits that int() refuses.
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
# A value quoted in a message is cut here: an API answer may hold a megabyte-long "id".
_SHOWN_CHARS = 40


def api_value_text(value: Any) -> str:
    """`value` as a message may quote it: repr (control characters escaped), no secret, short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = redact_text(repr(value))
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."


def _range_text(allowed: range) -> str:
    return f"{allowed.start} to {allowed.stop - 1}"


def api_int(value: Any, what: str, where: str = "", allowed: range = IDS) -> int:
    """`value` (an integer or a numeric string) as an int within `allowed`; else an ApiError
    that says `where` (e.g. "job 7, run 3"), `what` (the field) and the value."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(text := value.strip()):
        # More digits than any allowed value has: out of range, without int() (Python refuses
        # strings of more than 4,300 digits, and converting long ones is quadratic).
        digits = len(text.lstrip("-").lstrip("0"))
        number = int(text) if digits <= 20 else -1 if text.startswith("-") else MAX_ID * 10
    prefix = f"{where}: " if where else ""
    if number is None:
        raise ApiError(f"{prefix}{what} {api_value_text(value)} is not an integer")
    if number not in allowed:
        raise ApiError(f"{prefix}{what} {api_value_text(value)} is out of range (an integer from "
                       f"{_range_text(allowed)})")
    return number


def _opt_int(value: Any, what: str, where: str = "", allowed: range = IDS) -> int | None:
    return None if value is None or value == "" else api_int(value, what, where, allowed)


_TS_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(value: Any, where: str = "") -> datetime | None:
    """An ISO 8601 timestamp (or bare date) as an aware UTC datetime; None stays None.
    `where` (job and key) heads the error."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip().replace("Z", "+00:00")
    # fromisoformat in 3.11 accepts any fraction length, but normalise to microseconds anyway.
    text = _TS_FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(f"{where}unexpected timestamp {api_value_text(value)}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# csload's naming rule for the columns of a table (csload.load.columns has it for users).
_NOT_IDENT = re.compile(r"[^a-z0-9_]+")


def normalize_identifier(name: str) -> str:
    """The SQL-friendly form of a name in the files: lowercased, and every run of characters
    other than `[a-z0-9_]` one `_` (csload.load.columns' naming rule)."""
    return _NOT_IDENT.sub("_", name.lower())


@dataclass(frozen=True, slots=True)
class JobField:
    """One field of a job, as the job definition lists it."""

    field_name: str
    alias_name: str | None = None
    custom_var_position: int | None = None
    dynamic_var_key: str | None = None

    @property
    def column_name(self) -> str:
        """The key/column this field has in the files: alias, else a derived name."""
        if self.alias_name:
            return self.alias_name
        if self.field_name == "custom_var" and self.custom_var_position is not None:
            return f"custom_var_{self.custom_var_position}"
        if self.field_name == "dynamic_var" and self.dynamic_var_key is not None:
            return f"dynamic_var_{self.dynamic_var_key}"
        return self.field_name

    @classmethod
    def from_api(cls, raw: Any, where: str = "") -> JobField:
        """`where`: the job it belongs to, for messages ("job 7")."""
        if isinstance(raw, str):
            return cls(field_name=raw)
        if not isinstance(raw, dict) or not raw.get("fieldName"):
            raise ApiError(f"{where or 'a job'}: unexpected field {api_value_text(raw)}")
        for key in ("fieldName", "aliasName", "dynamicVarKey"):
            # An alias of 5 crashed the placement ("'int' object has no attribute 'lower'"),
            # and with it every sync of the project (QA, 2026-12-08).
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise ApiError(f"{where or 'a job'}: {key} {api_value_text(raw[key])} is not "
                               "text")
        return cls(
            field_name=str(raw["fieldName"]),
            alias_name=raw.get("aliasName") or None,
            custom_var_position=_opt_int(raw.get("customVarPosition"), "customVarPosition",
                                         where, CUSTOM_VAR_POSITIONS),
            dynamic_var_key=(str(raw["dynamicVarKey"]) if raw.get("dynamicVarKey") else None),
        )

    def to_api(self) -> Json:
        out: Json = {"fieldName": self.field_name}
        if self.alias_name:
            out["aliasName"] = self.alias_name
        if self.custom_var_position is not None:
            out["customVarPosition"] = self.custom_var_position
        if self.dynamic_var_key is not None:
            out["dynamicVarKey"] = self.dynamic_var_key
        return out


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    name: str
    format: str
    scope: str
    frequency: str
    state: str | None = None
    device_label: str | None = None
    segment_id: int | None = None
    fields: tuple[JobField, ...] = ()
    date_from: datetime | None = None
    date_to: datetime | None = None
    created_at: datetime | None = None
    # Why a job of the job list could not be read (`Job.listed`); None for a job read whole.
    unreadable: str | None = None

    @classmethod
    def listed(cls, raw: Any) -> Job:
        """A job of the job list. One whose fields, segment or times cannot be read is kept
        without them, `unreadable` saying why, so that a sync refuses it alone (placement:
        one such job failed every sync of the project). One without a readable id fails."""
        try:
            return cls.from_api(raw)
        except ApiError as exc:
            if not isinstance(raw, dict):
                raise
            # What a sync's report shows of it, and the device its placement ranks it by.
            device = raw.get("deviceLabel")
            return cls(*_job_id_and_name(raw), str(raw.get("format") or "").upper(),
                       str(raw.get("scope") or "").lower(), str(_frequency(raw)[0] or "").lower(),
                       state=raw["state"] if isinstance(raw.get("state"), str) else None,
                       device_label=device if isinstance(device, str) else None,
                       unreadable=str(exc))

    @classmethod
    def from_api(cls, raw: Any) -> Job:
        if not isinstance(raw, dict):
            raise ApiError(f"unexpected job object: {type(raw).__name__}")
        job_id, name = _job_id_and_name(raw)
        where = part_label(job_id, None, None)
        fields = raw.get("fields") or ()
        if not isinstance(fields, list | tuple):
            raise ApiError(f"{where}: fields is {type(fields).__name__}, not a list")
        if not fields:
            # Every job exports a field (the create rules); without them its files' columns
            # are unknown, and each of its runs failed at every sync (QA, 2026-12-08).
            raise ApiError(f"{where}: the job lists no fields")
        # A job without a scope or format was "skipped", exit 0: no word that the main feed
        # stopped loading (QA, 2026-12-08).
        scope, fmt, device = (_text(raw.get(key), key, where, required=key != "deviceLabel")
                              for key in ("scope", "format", "deviceLabel"))
        freq, date_range = _frequency(raw)
        state = raw.get("state")
        try:   # only shown (`csload jobs`): no reason to refuse the job
            created = parse_timestamp(raw.get("createdAt"))
        except ApiError:
            created = None
        return cls(
            job_id=job_id,
            name=name,
            format=FORMAT_NAMES.get(str(fmt).upper(), str(fmt).upper()),
            scope=str(scope).lower(),
            frequency=str(freq or "").lower(),
            state=state if isinstance(state, str) else None,
            device_label=device,
            segment_id=_opt_int(raw.get("segmentId"), "segmentId", where),
            fields=tuple(JobField.from_api(f, where) for f in fields),
            date_from=parse_timestamp(date_range.get("from"), f"{where}: dateRange.from: "),
            date_to=parse_timestamp(date_range.get("to"), f"{where}: dateRange.to: "),
            created_at=created,
        )

    def to_json(self) -> Json:
        """A plain dict for `--json` output."""
        return {
            "jobId": self.job_id,
            "name": self.name,
            "format": self.format,
            "scope": self.scope,
            "frequency": self.frequency,
            "state": self.state,
            "deviceLabel": self.device_label,
            "segmentId": self.segment_id,
            "dateRange": (
                {"from": api_text_or_none(self.date_from), "to": api_text_or_none(self.date_to)}
                if self.date_from or self.date_to else None
            ),
            "fields": [f.to_api() for f in self.fields],
            "createdAt": api_text_or_none(self.created_at),
            **({"unreadable": self.unreadable} if self.unreadable else {}),
        }


# The export engine's names of csload's formats, which older documentation offered (contract
# section 9): a job listed with one was skipped as "not supported", exit 0.
FORMAT_NAMES = {"CSVWITHNAMES": "CSV", "JSONEACHROW": "JSONL"}


def _text(value: Any, key: str, where: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(f"{where}: no {key}" if value in (None, "") else
                       f"{where}: {key} {api_value_text(value)} is not text")
    return value


def one_per_id(jobs: list[Job], *, strict: bool) -> list[Job]:
    """The job list with each id once. A job listed twice the same (pages that moved while
    they were read) is kept once; two definitions under one id are neither (QA, 2026-12-08:
    the second, with 3 fields, won silently and typed `views`' columns as text for good): an
    ApiError when `strict`, else the job kept as unreadable."""
    out: dict[int, Job] = {}
    for job in jobs:
        seen = out.setdefault(job.job_id, job)
        if seen == job or (seen.unreadable or "").endswith(_TWICE):
            continue
        problem = f"job {job.job_id}: {_TWICE}"
        if strict:
            raise ApiError(problem)
        out[job.job_id] = Job(job.job_id, job.name, job.format, job.scope, job.frequency,
                              state=job.state, unreadable=problem)
    return list(out.values())


_TWICE = "the job list gives it twice, with different definitions"


def _job_id_and_name(raw: Json) -> tuple[int, str]:
    # Until its id is known, a job is named by its name, if any.
    name = str(raw.get("name") or "")
    return api_int(raw.get("jobId", raw.get("id")), "jobId",
                   f"the job named {api_value_text(name)}" if name else "a job"), name


def _frequency(raw: Json) -> tuple[Any, dict[str, Any]]:
    """A job's frequency value and date range: `frequency` is an object or a bare string."""
    freq, date_range = raw.get("frequency"), None
    if isinstance(freq, dict):
        date_range = freq.get("dateRange")
        freq = freq.get("value")
    return freq, date_range if isinstance(date_range, dict) else {}


# What a whole job object has beyond its id: without them, a create answer is only the id.
_JOB_KEYS = ("name", "format", "scope", "frequency")


def created_job(payload: Any) -> Job | int:
    """What POST /exports answered: the whole job, or only the new job's id (to read back)."""
    if isinstance(payload, dict):
        if ("jobId" in payload or "id" in payload) and all(k in payload for k in _JOB_KEYS):
            return Job.from_api(payload)
        payload = payload.get("jobId", payload.get("id"))
    return api_int(payload, "jobId", "the created job")


@dataclass(frozen=True, slots=True)
class Part:
    """One downloadable file of a run. The URL is pre-signed: never shown, never logged."""

    part_id: int
    url: str = field(repr=False)
    expiration_date: datetime | None = None

    def __repr__(self) -> str:
        return (f"Part(part_id={self.part_id}, url={redact_url(self.url)!r}, "
                f"expiration_date={self.expiration_date!r})")

    @classmethod
    def from_api(cls, raw: Any, position: int, where: str = "") -> Part:
        """`position` is the file's 1-based place in the list: the id when partId is absent.
        `where`: the run it belongs to, for messages ("job 7, run 3")."""
        here = f"{where}, file {position}" if where else f"file {position}"
        if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
            raise ApiError(f"{here} of the run detail: unexpected file object (no url)")
        part_id = raw.get("partId")
        return cls(
            part_id=position if part_id is None else api_int(part_id, "partId", here),
            url=raw["url"],
            expiration_date=parse_timestamp(raw.get("expirationDate")),
        )

    def to_json(self) -> Json:
        return {"partId": self.part_id, "expirationDate": api_text_or_none(self.expiration_date)}


@dataclass(frozen=True, slots=True)
class Run:
    run_id: int
    job_id: int
    state: str
    start_date: datetime | None = None
    end_date: datetime | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    # Only the run detail endpoint lists files; None means "not fetched", () means "no files".
    parts: tuple[Part, ...] | None = None
    # Why a run of a run list could not be read (`Run.listed`); None for a run read whole.
    unreadable: str | None = None

    @classmethod
    def listed(cls, raw: Any, job_id: int) -> Run:
        """A run of job `job_id`'s run list. One whose times or files cannot be read is kept,
        `unreadable` saying why (its times None), so that it fails alone before its download
        (csload.transfer.staged.check_run_times): one bad run failed every sync of every job.
        A run without a readable id still fails the list: it could not be named."""
        try:
            return cls.from_api(raw, job_id=job_id)
        except ApiError as exc:
            if not isinstance(raw, dict):
                raise
            run_id = api_int(raw.get("jobRunId", raw.get("id")), "jobRunId", f"job {job_id}")
            return cls(run_id=run_id, job_id=job_id, state=str(raw.get("state") or "").upper(),
                       unreadable=str(exc))

    @classmethod
    def from_api(cls, raw: Any, job_id: int | None = None) -> Run:
        if not isinstance(raw, dict):
            raise ApiError(f"unexpected run object: {type(raw).__name__}")
        files = raw.get("files")
        named = raw.get("jobId")
        # job_id: the job whose runs were asked for, or 0 while the caller does not know it yet
        # (csload.api.lookup); the run's own jobId, when it names one, wins as before.
        asked = f"job {job_id}" if job_id else ""
        run_id = api_int(raw.get("jobRunId", raw.get("id")), "jobRunId", asked or "a run")
        where = ", ".join(filter(None, (asked, f"run {run_id}")))
        if named in (None, ""):
            if job_id is None:
                raise ApiError(f"{where}: the run names no jobId")
            owner = job_id
        else:
            owner = api_int(named, "jobId", where)
        if files is not None and not isinstance(files, list):
            raise ApiError(f"{where}: files is {type(files).__name__}, not a list")
        label = part_label(owner, run_id, None)

        def when(key: str) -> datetime | None:
            # "unexpected timestamp 'yesterday'" named neither the run nor the key.
            try:
                return parse_timestamp(raw.get(key))
            except ApiError as exc:
                raise ApiError(f"{label}: {key}: {exc}") from None

        return cls(
            run_id=run_id,
            job_id=owner,
            state=str(raw.get("state") or "").upper(),
            start_date=when("startDate"),
            end_date=when("endDate"),
            created_at=when("createdAt"),
            finished_at=when("finishedAt"),
            parts=None if files is None else _parts(files, label),
        )

    def to_json(self) -> Json:
        out: Json = {
            "jobRunId": self.run_id,
            "jobId": self.job_id,
            "state": self.state,
            "startDate": api_text_or_none(self.start_date),
            "endDate": api_text_or_none(self.end_date),
            "createdAt": api_text_or_none(self.created_at),
            "finishedAt": api_text_or_none(self.finished_at),
        }
        if self.parts is not None:
            out["files"] = [p.to_json() for p in self.parts]
        return out


def _parts(files: list[Any], where: str) -> tuple[Part, ...]:
    """The files of a run detail as Parts; two files with one partId are refused: a dict
    keyed by part id (csload.transfer.stage) would silently keep only one of them."""
    parts = tuple(Part.from_api(f, i, where) for i, f in enumerate(files, start=1))
    first: dict[int, int] = {}
    for position, part in enumerate(parts, start=1):
        if part.part_id in first:
            raise ApiError(f"{where}: the run detail lists part {part.part_id} twice (files "
                           f"{first[part.part_id]} and {position})")
        first[part.part_id] = position
    return parts


def kept_until(part: Part | None, run: Run) -> datetime | None:
    """Until when storage keeps the part: its expirationDate, else the run's finish + 7 days."""
    if part is not None and part.expiration_date is not None:
        return part.expiration_date
    if run.finished_at is not None:
        return run.finished_at + FILE_RETENTION
    return None
