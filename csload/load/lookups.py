"""What an analyst needs beside the rows: lookup tables for coded columns, column comments,
and the names of custom variables.

* **Lookup tables.** The codes of coded columns (`device_id`, `app_events.event_type`) are data,
  in `schemas/codes.toml`, the one place csload knows them. `ensure_lookups` writes each as a
  small table in the schema `codes`: `codes.device_types(device_id, device)`,
  `codes.app_event_types(event_type, event_type_name)`. They live in their own schema, not in
  `main`, because a job's table is always in `main` and its name cannot hold a dot
  (`check_table_name`): no scope table or job-mapped table can ever clash with a lookup table,
  whatever the tables are called, and a BI tool listing `main` sees only data.
* **Column comments.** `describe_table` adds `COMMENT ON COLUMN` to the columns just created or
  added to a table: the field's description from `schemas/` (with the codes of a coded field,
  the family of a parallel array, the field's name when an alias renamed it) and the meaning of
  the lineage columns. It runs only for new columns, so the sync of a day into an existing
  table issues no statement at all. `describe_from_ledger` does the same for every column of
  every table the ledger's jobs load into (the views of a lake connection, which are new on
  each connect).
* **Custom variables.** Their names come from the API's custom-vars endpoint only, so the files
  say `custom_var_3`. `record_custom_vars` stores the project's (position, name) pairs in
  `codes.custom_vars(position, name, table_name, column_name)`, one row per column that carries
  the variable (NULL table and column for a variable no job exports), and comments those
  columns with the variable's name.

Everything here is SQL built from names read from files and the API: identifiers go through
`quote_ident`, texts through `sql_str` or parameters.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import duckdb

from csload.api.models import normalize_identifier
from csload.api.schemas import SCOPES, FieldSpec, load_schema, schemas_dir
from csload.errors import ConfigError
from csload.load.columns import VARIABLE_FIELDS, Column
from csload.load.ledger import Ledger
from csload.load.lineage import LINEAGE_COLUMNS
from csload.load.sqltext import quote_ident, sql_str

CODES_SCHEMA = "codes"
CUSTOM_VARS_TABLE = "custom_vars"

LINEAGE_COMMENTS: dict[str, str] = {
    "_job_id": "csload lineage: the export job whose run delivered the row (_csload.jobs)",
    "_run_id": "csload lineage: the run that delivered the row (_csload.runs); per row key the "
               "latest run wins",
    "_date": "csload lineage: the row's date: session_date, or the UTC date of view_time; "
             "else the first day of its run's window",
    "_loaded_at": "csload lineage: when csload loaded the row (UTC)",
}
assert set(LINEAGE_COMMENTS) == set(LINEAGE_COLUMNS)


@dataclass(frozen=True, slots=True)
class CodeTable:
    """One coded field family's codes, as `schemas/codes.toml` lists them."""

    table: str
    code_column: str
    label_column: str
    description: str
    fields: tuple[tuple[str, str], ...]     # (scope, field name) of the columns it decodes
    codes: tuple[tuple[int, str], ...]

    @property
    def qualified(self) -> str:
        return f"{CODES_SCHEMA}.{self.table}"

    def legend(self) -> str:
        """`0 start, 1 show, 2 hide (codes.app_event_types)`: for a column comment."""
        pairs = ", ".join(f"{code} {label}" for code, label in self.codes)
        return f"{pairs} (names: {self.qualified})"


def _identifier(raw: Any, where: str, key: str) -> str:
    if not isinstance(raw, str) or not raw or normalize_identifier(raw) != raw:
        raise ConfigError(f"{where}: {key} must be a lowercase identifier, got {raw!r}")
    return raw


def _code_table(raw: Any, where: str) -> CodeTable:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each [[lookup]] must be a table")
    unknown = set(raw) - {"table", "code_column", "label_column", "description", "fields",
                          "codes"}
    if unknown:
        raise ConfigError(f"{where}: [[lookup]] has unknown keys {sorted(unknown)}")
    table = _identifier(raw.get("table"), where, "table")
    where = f"{where} [[lookup]] {table}"
    fields = []
    for item in raw.get("fields", []):
        scope, _, name = str(item).partition(":")
        if scope not in SCOPES or name not in load_schema(scope):
            raise ConfigError(f"{where}: {item!r} is not 'scope:field' of a known field")
        fields.append((scope, name))
    codes = []
    for item in raw.get("codes", []):
        code, label = (item.get("code"), item.get("label")) if isinstance(item, dict) else (0, 0)
        if not isinstance(code, int) or not isinstance(label, str) or not label:
            raise ConfigError(f"{where}: each code needs an integer `code` and a `label`")
        codes.append((code, label))
    if not fields or not codes or len({c for c, _ in codes}) != len(codes):
        raise ConfigError(f"{where}: needs `fields` and `codes`, each code once")
    code_column = _identifier(raw.get("code_column"), where, "code_column")
    label_column = _identifier(raw.get("label_column"), where, "label_column")
    if code_column == label_column:
        raise ConfigError(f"{where}: code_column and label_column must differ")
    return CodeTable(table=table, code_column=code_column, label_column=label_column,
                     description=str(raw.get("description", "")), fields=tuple(fields),
                     codes=tuple(codes))


def parse_codes(raw: dict[str, Any], where: str) -> tuple[CodeTable, ...]:
    """Validate a codes document (as read from TOML): ConfigError naming what is wrong."""
    unknown = set(raw) - {"lookup"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}: expected [[lookup]] tables")
    items = raw.get("lookup", [])
    if not isinstance(items, list):
        raise ConfigError(f"{where}: `lookup` must be a list of [[lookup]] tables")
    tables = tuple(_code_table(item, where) for item in items)
    if len({t.table for t in tables}) != len(tables):
        raise ConfigError(f"{where}: two [[lookup]] tables have the same name")
    return tables


@cache
def code_tables() -> tuple[CodeTable, ...]:
    """The lookup tables of `schemas/codes.toml`, validated."""
    path = schemas_dir() / "codes.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse_codes(raw, str(path))


def code_table_of(scope: str, field_name: str) -> CodeTable | None:
    """The lookup table that decodes a field, if it is a coded one."""
    return next((t for t in code_tables() if (scope, field_name) in t.fields), None)


def ensure_lookups(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)write the lookup tables in the schema `codes`: a few rows each, so always whole."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(CODES_SCHEMA)}")
    for lookup in code_tables():
        name = f"{quote_ident(CODES_SCHEMA)}.{quote_ident(lookup.table)}"
        code, label = quote_ident(lookup.code_column), quote_ident(lookup.label_column)
        values = ", ".join(f"({c}, {sql_str(text)})" for c, text in lookup.codes)
        con.execute(f"CREATE OR REPLACE TABLE {name} ({code} BIGINT, {label} VARCHAR)")
        con.execute(f"INSERT INTO {name} VALUES {values}")  # noqa: S608
        con.execute(f"COMMENT ON TABLE {name} IS {sql_str(lookup.description)}")


def lookups_missing(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database lacks a lookup table (one an older csload made, say)."""
    row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? "
                      "AND database_name = current_database()", [CODES_SCHEMA]).fetchone()
    return not row or int(row[0]) < len(code_tables())


def column_comment(scope: str, field_name: str, column: str, *, names_kept: bool = True
                   ) -> str | None:
    """The comment of a table column carrying `field_name` of `scope`, None: nothing to say.
    `names_kept`: the target keeps the custom variables' names (a database; not a lake)."""
    if field_name in VARIABLE_FIELDS:
        kind = "custom" if field_name == "custom_var" else "dynamic"
        names = (f"{CODES_SCHEMA}.{CUSTOM_VARS_TABLE}" if names_kept
                 else "`csload custom-vars` lists them")
        where = f"; its name: {names}" if field_name == "custom_var" else ""
        return f"a {kind} variable of the project, as text{where}"
    spec: FieldSpec | None = None
    if scope in SCOPES and field_name in load_schema(scope):
        spec = load_schema(scope).field(field_name)
    if spec is None:
        return f"field {field_name}, unknown to csload's schema: loaded as text"
    parts = []
    if normalize_identifier(field_name) != column:
        parts.append(f"field {field_name}")
    if spec.description:
        parts.append(spec.description)
    lookup = code_table_of(scope, field_name)
    if lookup is not None:
        parts.append(lookup.legend())
    if spec.family:
        parts.append(f"element i belongs to the same {spec.family} item as element i of the "
                     f"other {spec.family}.* arrays")
    return "; ".join(parts) or None


def _comment(con: duckdb.DuckDBPyConnection, table: str, column: str, text: str) -> None:
    con.execute(f"COMMENT ON COLUMN {quote_ident(table)}.{quote_ident(column)} "
                f"IS {sql_str(text)}")


def describe_table(con: duckdb.DuckDBPyConnection, table: str,
                   columns: Iterable[tuple[str, Column]],
                   before: Mapping[str, str] | None) -> None:
    """Comment the columns of `table` that are not in `before` (its columns before this batch;
    None: the table was just created, lineage columns included), and write the lookup tables
    with the first of them. `columns`: (scope, column) of every job column the batch loads.
    Nothing new: no statement at all."""
    new: dict[str, tuple[str, Column]] = {}
    for scope, col in columns:
        if before is None or col.name not in before:
            new.setdefault(col.name, (scope, col))
    lineage = [n for n in LINEAGE_COLUMNS if before is None or n not in before]
    if not new and not lineage:
        return
    ensure_lookups(con)
    for name, (scope, col) in new.items():
        text = column_comment(scope, col.field_name, name)
        if text:
            _comment(con, table, name, text)
    for name in lineage:
        _comment(con, table, name, LINEAGE_COMMENTS[name])


def _main_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Table or view -> its columns, in `main` of the connection's own database."""
    rows = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
        "AND database_name = current_database() AND NOT internal").fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(str(table), set()).add(str(column))
    return out


@dataclass(frozen=True, slots=True)
class _JobColumn:
    table: str
    scope: str
    column: str
    field_name: str
    custom_var_position: int | None


def _job_columns(con: duckdb.DuckDBPyConnection) -> list[_JobColumn]:
    """Every field of every job of the ledger, with the table and column it loads into."""
    ledger = Ledger(con)
    if not ledger.exists():
        return []
    return [_JobColumn(table, job.scope, normalize_identifier(field.column_name),
                       field.field_name, field.custom_var_position)
            for job, table in ledger.jobs().values() if table
            for field in job.fields]


def describe_from_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Comment every column of every table (or view) the ledger's jobs load into: a lake's
    views, whose target keeps no `codes.custom_vars` (a comment sent readers there)."""
    present = _main_columns(con)
    columns = _job_columns(con)
    done: set[tuple[str, str]] = set()
    for item in columns:
        key = (item.table, item.column)
        if item.column not in present.get(item.table, ()) or key in done:
            continue
        done.add(key)
        text = column_comment(item.scope, item.field_name, item.column, names_kept=False)
        if text:
            _comment(con, item.table, item.column, text)
    for table in {item.table for item in columns}:
        for name in LINEAGE_COLUMNS:
            if name in present.get(table, ()):
                _comment(con, table, name, LINEAGE_COMMENTS[name])


def record_custom_vars(con: duckdb.DuckDBPyConnection,
                       variables: Iterable[tuple[int, str | None]]) -> int:
    """Store the project's custom variables (position, name) as `codes.custom_vars` and name
    them in the comments of the columns that carry them (found through the ledger's jobs).
    Returns how many columns were commented. Call it inside the writer's transaction or on
    its own: it replaces the table whole."""
    names = {int(position): name for position, name in variables}
    present = _main_columns(con)
    carried = sorted({(item.custom_var_position, item.table, item.column)
                      for item in _job_columns(con)
                      if item.field_name == "custom_var" and item.custom_var_position is not None
                      and item.column in present.get(item.table, ())})
    rows: list[tuple[int, str | None, str | None, str | None]] = [
        (position, names.get(position), table, column) for position, table, column in carried]
    exported = {position for position, _, _ in carried}
    rows += [(position, name, None, None) for position, name in sorted(names.items())
             if position not in exported]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(CODES_SCHEMA)}")
    target = f"{quote_ident(CODES_SCHEMA)}.{quote_ident(CUSTOM_VARS_TABLE)}"
    con.execute(f"CREATE OR REPLACE TABLE {target} (position BIGINT, name VARCHAR, "
                "table_name VARCHAR, column_name VARCHAR)")
    if rows:
        con.executemany(f"INSERT INTO {target} VALUES (?, ?, ?, ?)", rows)  # noqa: S608
    con.execute(f"COMMENT ON TABLE {target} IS "
                f"{sql_str('the project custom variables and the columns that carry them')}")
    for position, table, column in carried:
        name = names.get(position)
        label = f"custom variable {position}: {name}" if name else \
            f"custom variable {position} (no name on the project)"
        _comment(con, table, column, label)
    return len(carried)
