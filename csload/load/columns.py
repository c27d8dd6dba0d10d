"""How a job's fields become table columns: names, types, row key and date.

Column naming rule (documented for users):

* A column is named after the field's name *in the files*: its alias when the job gives one,
  else the field name (`custom_var_<position>` / `dynamic_var_<key>` for variables; see
  `JobField.column_name`).
* That name is made SQL-friendly: lowercased, and every run of characters other than
  `[a-z0-9_]` becomes one `_`. So `app_events.event_type` -> `app_events_event_type`,
  `Page Type` -> `page_type`.
* Names starting with `_` after that are refused: `_job_id`, `_run_id`, `_date`, `_loaded_at`
  and every `_csload*` name are csload's own. Two fields of one job whose names collide after
  normalisation are refused too (ConfigError), as is a column that two jobs of one table
  load with different types. `layout_problem` says it of a job (with the column names a
  target keeps: a lake's `date`), so that the placement refuses such a job before its runs
  are downloaded (csload.load.placement), the doctor names it, and `csload jobs create`
  refuses to make one (csload.api.jobspec, the rule "csload column").
* Generated SQL always quotes identifiers and string literals (csload.load.sqltext):
  aliases are user input.

Types come from `schemas/`: UInt64 -> UBIGINT, narrower integers -> BIGINT, DateTime -> TIMESTAMP
(UTC), Array(T) -> T[].
`custom_var`, `dynamic_var` and fields the schema does not know load as VARCHAR (the last with
a warning on the `csload.load` logger).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from csload.api.models import normalize_identifier
from csload.api.schemas import SCOPES, ScopeSchema, load_schema
from csload.errors import ConfigError

if TYPE_CHECKING:
    # Types only: the data's shape is all this module needs of them.
    from csload.api.models import Job, JobField

log = logging.getLogger("csload.load")

VARIABLE_FIELDS = ("custom_var", "dynamic_var")

def check_table_name(table: str) -> str:
    """A target table name must already be in normal form and not reserved."""
    if not table or normalize_identifier(table) != table or table.startswith("_"):
        raise ConfigError(
            f"invalid table name {table!r}: use lowercase letters, digits and '_', "
            "not starting with '_'"
        )
    return table


@dataclass(frozen=True, slots=True)
class Column:
    """One field of a job as it appears in its files and in the table."""

    source: str          # the key / header name in the files
    name: str            # the table column
    duckdb_type: str     # the table column's type
    field_name: str      # the Contentsquare field it carries
    known: bool          # False: not in csload's schema, loaded as VARCHAR

    @property
    def is_array(self) -> bool:
        return self.duckdb_type.endswith("[]")


@dataclass(frozen=True, slots=True)
class JobLayout:
    """The columns of one job plus where its key and date are."""

    job_id: int
    scope: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...] | None   # table columns of the row key, None: not exported
    date_column: str | None               # table column of the date field, None: not exported
    date_is_timestamp: bool

    def by_source(self) -> dict[str, Column]:
        return {c.source: c for c in self.columns}


# What to do about a job csload cannot load: the API changes no job once created.
NEW_ALIASES = "a job cannot be changed: create one with other aliases (`csload jobs create`)"


def _named(source: str, name: str) -> str:
    return f"column {source!r}" if source == name else f"column {source!r} (named {name!r})"


def _column(jf: JobField, schema: ScopeSchema) -> Column | str:
    """The column of a field, or why csload cannot name it."""
    source = jf.column_name
    name = normalize_identifier(source)
    if not name or name.startswith("_"):
        return f"{_named(source, name)} starts with '_', which csload keeps for its own columns"
    if jf.field_name in VARIABLE_FIELDS:
        return Column(source, name, "VARCHAR", jf.field_name, known=True)
    if jf.field_name in schema:
        return Column(source, name, schema.field(jf.field_name).duckdb_type, jf.field_name,
                      known=True)
    return Column(source, name, "VARCHAR", jf.field_name, known=False)


def _columns(job: Job, schema: ScopeSchema) -> list[Column] | str:
    """A job's columns, or why csload cannot load them (a name csload keeps, or two columns
    of one name)."""
    columns: list[Column] = []
    seen: dict[str, str] = {}
    for jf in job.fields:
        col = _column(jf, schema)
        if isinstance(col, str):
            return col
        if col.name in seen:
            return f"columns {seen[col.name]!r} and {col.source!r} both become {col.name!r}"
        seen[col.name] = col.source
        columns.append(col)
    return columns


def unknown_column(job_id: int, source: str) -> Column:
    """A column found in a file header that the job does not list: loaded as VARCHAR."""
    name = normalize_identifier(source)
    if not name or name.startswith("_"):
        raise ConfigError(f"job {job_id}: file column {source!r} becomes reserved name {name!r}")
    log.warning("job %s: file column %r is not a field of the job; loading it as VARCHAR",
                job_id, source)
    return Column(source, name, "VARCHAR", source, known=False)


def layout_problem(job: Job, reserved: Mapping[str, str] | None = None) -> str | None:
    """Why csload cannot load `job`'s columns, or None. `reserved`: column names the target
    keeps for itself, each with what it is (a lake's partition column). A job of a scope
    csload does not know is not its concern: the sync skips it, saying so."""
    if job.scope not in SCOPES:
        return None
    columns = _columns(job, load_schema(job.scope))
    if isinstance(columns, str):
        return columns
    for column in columns:
        if reserved and column.name in reserved:
            return f"{_named(column.source, column.name)} is {reserved[column.name]}"
    return None


def job_layout(job: Job) -> JobLayout:
    """Columns, key and date of a job, validated (ConfigError on a name csload keeps or two
    columns of one name: `layout_problem`)."""
    schema = load_schema(job.scope)
    columns = _columns(job, schema)
    if isinstance(columns, str):
        raise ConfigError(f"job {job.job_id}: {columns}; {NEW_ALIASES}")
    for col in columns:
        if not col.known:
            log.warning("job %s: field %r is not in csload's %s schema; loading it as VARCHAR",
                        job.job_id, col.field_name, schema.scope)
    by_field: dict[str, Column] = {}
    for col in columns:
        by_field.setdefault(col.field_name, col)   # a field exported twice: the first wins
    key: tuple[str, ...] | None = None
    if all(k in by_field for k in schema.row_key):
        key = tuple(by_field[k].name for k in schema.row_key)
    date_col = by_field.get(schema.date_field)
    return JobLayout(
        job_id=job.job_id,
        scope=job.scope,
        columns=tuple(columns),
        key_columns=key,
        date_column=date_col.name if date_col else None,
        date_is_timestamp=bool(date_col and date_col.duckdb_type == "TIMESTAMP"),
    )


# The integer types csload loaded catalog fields as before it loaded every integer narrower
# than 64 bits as BIGINT (csload.schemas.SCALAR_TYPES): a table made then is widened in place.
_NARROW_INTEGERS = frozenset({"UTINYINT", "USMALLINT", "UINTEGER", "TINYINT", "SMALLINT",
                              "INTEGER"})


def widens(have: str, want: str) -> bool:
    """Whether an existing column of type `have` becomes `want` by widening its integers (a
    table an older csload made: `USMALLINT` -> `BIGINT`, `UINTEGER[]` -> `BIGINT[]`); every
    value it holds fits, so `ALTER COLUMN ... SET DATA TYPE` cannot fail."""
    if have.endswith("[]") and want.endswith("[]"):
        have, want = have[:-2], want[:-2]
    return want == "BIGINT" and have in _NARROW_INTEGERS


def key_types(scope: str) -> tuple[str, ...]:
    """DuckDB types of the row key fields of a scope."""
    schema = load_schema(scope)
    return tuple(schema.field(k).duckdb_type for k in schema.row_key)
