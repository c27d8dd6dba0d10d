"""Which rows a run holds, as the files show them: the truth tests compare a loader against.

A run's rows are the generated rows of the days its window touches, whose own time
(`session_time` / `view_time`) lies in [start, end) and before the run was created, kept by
the job's deviceLabel, projected
on the job's fields and keyed by column name. DateTime arrays that CSV writes to the minute are
truncated to the minute here too, so the truth is exactly what a reader of the file gets.

Two variants (contract section 9, `Variants`) change the values themselves, so they are applied
here, where files and truth both come from: `minute_time_arrays_in_json` (JSONL writes those
arrays to the minute too) and `wide_integers` (values beyond the catalog's guessed widths, for
one session in three, keyed by session so that both scopes agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from csload.api.schemas import load_schema
from csload.simulator.config import Variants
from csload.simulator.data import Row, generate_day
from csload.simulator.model import (
    CUSTOM_VAR,
    DEVICE_IDS,
    DYNAMIC_VAR,
    JobRecord,
    RunRecord,
    SimField,
)
from csload.simulator.variables import VariableValues

# DateTime arrays that the CSV writer writes as 'YYYY-MM-DD HH:MM' (the contract: "inside
# arrays sometimes only to the minute"). JSONL always keeps the seconds.
MINUTE_PRECISION_IN_CSV = frozenset({
    "app_events.event_time",
    "errors.error_time",
    "session_add_to_cart_items.add_to_cart_time",
})
TIME_FIELD = {"sessions": "session_time", "views": "view_time"}
VARIABLE_TYPE = "Nullable(String)"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a job's files."""

    name: str
    field: SimField
    # The export-engine type of the values (custom and dynamic vars: Nullable(String)).
    source_type: str
    # A DateTime array written to the minute.
    minute_precision: bool = False


_CONTRACT = Variants()

# wide_integers: what is added to a field's value (each element of an array) in the rows it
# touches. Each lands just past the field's guessed width (UInt16: 65535, UInt32: 2^32 - 1).
WIDENED = {
    "session_number": 100_000,
    "view_number": 70_000,
    "screen_width": 65_536,
    "window_width": 65_536,
    "session_duration_msec": 1 << 32,
    "view_duration_msec": 1 << 32,
    "session_transaction_items.quantity": 70_000,
}


def widened(row: Row) -> bool:
    """Whether wide_integers widens this row (one session in three, the same in both scopes)."""
    session_id: int = row["session_id"]
    return (session_id >> 11) % 3 == 0


def _widen(row: Row) -> Row:
    out = dict(row)
    for name, extra in WIDENED.items():
        value = out.get(name)
        if isinstance(value, list):
            out[name] = [v + extra for v in value]
        elif value is not None:
            out[name] = value + extra
    return out


def columns_of(job: JobRecord, variants: Variants = _CONTRACT) -> list[Column]:
    schema = load_schema(job.scope)
    out = []
    for spec in job.fields:
        if spec.field_name in (CUSTOM_VAR, DYNAMIC_VAR):
            out.append(Column(spec.column_name, spec, VARIABLE_TYPE))
            continue
        source_type = schema.field(spec.field_name).source_type
        minute = spec.field_name in MINUTE_PRECISION_IN_CSV and (
            job.format == "CSV" or variants.minute_time_arrays_in_json)
        out.append(Column(spec.column_name, spec, source_type, minute))
    return out


def column_types(job: JobRecord) -> dict[str, str]:
    """Column name -> export-engine type, in file order."""
    return {c.name: c.source_type for c in columns_of(job)}


def _to_minute(values: list[datetime]) -> list[datetime]:
    return [v.replace(second=0) for v in values] if values else values


def _extractor(column: Column, variables: VariableValues, scope: str) -> Callable[[Row], Any]:
    spec = column.field
    if spec.field_name == CUSTOM_VAR:
        position = spec.custom_var_position or 0
        if scope == "views":
            return lambda r: variables.custom(r["session_id"], r["view_number"], position)
        return lambda r: variables.custom(r["session_id"], 0, position)
    if spec.field_name == DYNAMIC_VAR:
        key = spec.dynamic_var_key or ""
        time_field = TIME_FIELD[scope]
        if scope == "views":
            return lambda r: variables.dynamic(r["session_id"], r["view_number"], key,
                                               r[time_field].date())
        return lambda r: variables.dynamic(r["session_id"], 0, key, r[time_field].date())
    name = spec.field_name
    if column.minute_precision:
        return lambda r: _to_minute(r[name])
    return lambda r: r[name]


def source_rows(job: JobRecord, run: RunRecord, *, seed: int, sessions_per_day: int,
                project_id: int, variants: Variants = _CONTRACT) -> list[Row]:
    """The generated rows (all fields, by field name) the run exports."""
    time_field = TIME_FIELD[job.scope]
    devices = DEVICE_IDS[job.device_label]
    start = run.start.replace(tzinfo=None)
    # A run cannot export what had not happened yet when it started (a `once` job over today).
    end = min(run.end, run.created_at).replace(tzinfo=None)
    out: list[Row] = []
    for day, revision in run.revisions:
        data = generate_day(seed, day, revision, sessions_per_day, project_id)
        rows = data.sessions if job.scope == "sessions" else data.views
        out.extend(
            r for r in rows
            if start <= r[time_field] < end and (devices is None or r["device_id"] in devices)
        )
    if variants.wide_integers:
        # Copies: the day's rows are shared by a cache.
        out = [_widen(r) if widened(r) else r for r in out]
    return out


def run_rows(job: JobRecord, run: RunRecord, *, seed: int, sessions_per_day: int,
             project_id: int, variables: VariableValues, variants: Variants = _CONTRACT
             ) -> list[dict[str, Any]]:
    """The run's rows keyed by column name, typed, exactly as its files hold them."""
    columns = columns_of(job, variants)
    # Plain fields are copied in one C-level step (itemgetter + update); a dict made from the
    # column template keeps file order whatever is filled in later.
    plain = [c for c in columns if c.field.field_name not in (CUSTOM_VAR, DYNAMIC_VAR)
             and not c.minute_precision]
    special = [(c.name, _extractor(c, variables, job.scope)) for c in columns if c not in plain]
    plain_names = [c.name for c in plain]
    fields = [c.field.field_name for c in plain]
    template = dict.fromkeys(c.name for c in columns)

    # itemgetter of several names returns a tuple; of one name, the bare value.
    getter: Callable[[Row], Any] = (itemgetter(*fields) if len(fields) > 1
                                    else lambda row: tuple(row[f] for f in fields))
    out = []
    for row in source_rows(job, run, seed=seed, sessions_per_day=sessions_per_day,
                           project_id=project_id, variants=variants):
        values = template.copy()
        values.update(zip(plain_names, getter(row), strict=True))
        for name, get in special:
            values[name] = get(row)
        out.append(values)
    return out
