"""A small, independent writer of export part files, exactly as contract section 6 says.

CSV: RFC 4180 (`,` and `"`, inner `"` doubled), a header in every part, `\\N` for NULL, values
quoted when they hold `,` `"` CR or LF, are empty, or are the text `\\N`. Arrays `[1,2]` /
`['a','it\\'s']`: strings and timestamps single-quoted, `\\\\` for a backslash and `\\'` for a
quote. JSONL: one object per line. Both gzip-compressed unless asked otherwise.

Also builders for the API objects the store takes (Job, Run, StagedRun).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from csload.api.models import Job, JobField, Run
from csload.api.schemas import load_schema
from csload.transfer.staged import StagedPart, StagedRun

NULL = "\\N"


def csv_quote(text: str) -> str:
    if text == "" or text == NULL or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _element(value: Any, minute: bool, escape_controls: bool) -> str:
    if isinstance(value, datetime):
        return "'" + value.isoformat(" ", "minutes" if minute else "seconds") + "'"
    if isinstance(value, str):
        text = value.replace("\\", "\\\\").replace("'", "\\'")
        if escape_controls:   # the export engine's other escapes; csload accepts both forms
            text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
        return "'" + text + "'"
    if value is None:
        return "NULL"
    return str(value)


def csv_value(value: Any, *, minute: bool = False, escape_controls: bool = False) -> str:
    if value is None:
        return NULL
    if isinstance(value, list):
        return csv_quote("[" + ",".join(_element(v, minute, escape_controls) for v in value) + "]")
    if isinstance(value, datetime):
        return value.isoformat(" ", "seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return csv_quote(value)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(" ", "seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _write(path: Path, body: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]], *,
              compress: bool = True, newline: str = "\n", minute_arrays: bool = False,
              escape_controls: bool = False) -> Path:
    lines = [",".join(csv_quote(c) for c in columns)]
    for row in rows:
        lines.append(",".join(csv_value(row.get(c), minute=minute_arrays,
                                        escape_controls=escape_controls) for c in columns))
    body = "".join(line + newline for line in lines)
    return _write(path, body.encode(), compress)


def write_jsonl(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]], *,
                compress: bool = True, trailing_blank: bool = False) -> Path:
    body = b"".join(orjson.dumps({c: _json_value(row.get(c)) for c in columns}) + b"\n"
                    for row in rows)
    if trailing_blank:
        body += b"\n"
    return _write(path, body, compress)


# --- API objects -----------------------------------------------------------------------------

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def job(job_id: int, scope: str = "views", fmt: str = "CSV", fields: Sequence[Any] = (),
        frequency: str = "daily") -> Job:
    """fields: names, or (name, alias) pairs, or JobField objects; default: the whole schema."""
    if not fields:
        fields = load_schema(scope).names
    out = []
    for f in fields:
        if isinstance(f, JobField):
            out.append(f)
        elif isinstance(f, tuple):
            out.append(JobField(field_name=f[0], alias_name=f[1]))
        else:
            out.append(JobField(field_name=f))
    return Job(job_id=job_id, name=f"job {job_id}", format=fmt, scope=scope,
               frequency=frequency, fields=tuple(out))


def run(run_id: int, job_id: int, day: date, *, days: int = 1, finished_hours: float = 4
        ) -> Run:
    """A SUCCESS run over [day, day + days) that finished `finished_hours` after the window."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=days)
    return Run(run_id=run_id, job_id=job_id, state="SUCCESS", start_date=start, end_date=end,
               created_at=end, finished_at=end + timedelta(hours=finished_hours))


@dataclass
class Writer:
    """Writes a run's parts into a folder and returns the StagedRun."""

    folder: Path

    def staged(self, the_job: Job, the_run: Run, parts: Sequence[Sequence[dict[str, Any]]], *,
               table: str = "", compress: bool = True, **options: Any) -> StagedRun:
        columns = [f.column_name for f in the_job.fields]
        staged_parts = []
        for i, rows in enumerate(parts, start=1):
            suffix = ".csv" if the_job.format == "CSV" else ".jsonl"
            path = self.folder / f"r{the_run.run_id}-p{i}{suffix}{'.gz' if compress else ''}"
            if the_job.format == "CSV":
                write_csv(path, columns, rows, compress=compress, **options)
            else:
                write_jsonl(path, columns, rows, compress=compress, **options)
            staged_parts.append(StagedPart(i, path, path.stat().st_size))
        return StagedRun(the_job, the_run, tuple(staged_parts), table)
