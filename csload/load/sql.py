"""SQL text that reads part files with DuckDB's own readers, and the macros it needs.

Arrays of strings in CSV (`['a','it\\'s']`) are read as VARCHAR and decoded by
`_csload_str_list`, because DuckDB's `::VARCHAR[]` cast mishandles some backslash escapes: it
turns `\\n` into `n`, `\\t` into `t` and `\\0` into `0` (measured with DuckDB 2.0.1). Measured
too: for well-formed array text the cast is exact whenever no backslash is followed by one of
`n t r 0 b f` (quotes, commas, brackets, raw line breaks, `NULL` as text, unicode, edge spaces,
`\\'`, `\\\\` and any other `\\c` all survive; a differential check of 20,000 generated arrays
found no difference), and it is ~9x faster than the exact decoder. So the cast is used for such
text, and the exact decoder (escapes of the export engine: `\\\\ \\' \\n \\t \\r \\0 \\b \\f`,
any other `\\c` -> `c`) otherwise. Known leniency of the fast path: malformed text such as
`['a'b]` is accepted by the cast (as `['ab']`) rather than refused; the export engine never
writes such text, and validating every array with a regex would cost ~0.2 s per million values
per column.

Arrays of numbers and timestamps are parsed by the CSV reader itself (`UBIGINT[]`,
`TIMESTAMP[]`, minute precision included), so a bad value is reported with its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from csload.load.sqltext import quote_ident, sql_str

if TYPE_CHECKING:
    import duckdb

    from csload.load.columns import Column

FILE_COLUMN = "_csload_file"

# One array element token: a single-quoted string with backslash escapes, or NULL.
_TOKEN = r"'(?:[^'\\]|\\.)*'|NULL"  # noqa: S105
_VALID = r"(?s)\[\s*(?:(?:" + _TOKEN + r")\s*(?:,\s*(?:" + _TOKEN + r")\s*)*)?\]"

# The text the cast reads exactly (see above): no `\n \t \r \0 \b \f` escape in it.
_CAST_EXACT = r"(NOT contains(s, '\') OR NOT regexp_matches(s, '\\[ntr0bf]'))"

MACROS = (
    # Decode the backslash escapes of one element's text, in one left-to-right pass.
    "CREATE OR REPLACE TEMP MACRO _csload_unescape(x) AS array_to_string(list_transform("
    r"regexp_extract_all(x, '(?s)\\.|[^\\]+'), lambda p: CASE WHEN p[1] = '\' THEN "
    "CASE p[2] WHEN 'n' THEN chr(10) WHEN 't' THEN chr(9) WHEN 'r' THEN chr(13) "
    "WHEN '0' THEN chr(0) WHEN 'b' THEN chr(8) WHEN 'f' THEN chr(12) ELSE p[2] END "
    "ELSE p END), '')",
    "CREATE OR REPLACE TEMP MACRO _csload_str_list_exact(s) AS list_transform("
    f"regexp_extract_all(s, {sql_str('(?s)' + _TOKEN)}), "
    "lambda t: CASE WHEN t = 'NULL' THEN NULL ELSE _csload_unescape(t[2:-2]) END)",
    "CREATE OR REPLACE TEMP MACRO _csload_str_list_ok(s) AS s IS NULL "
    f"OR ({_CAST_EXACT} AND TRY_CAST(s AS VARCHAR[]) IS NOT NULL) "
    f"OR regexp_full_match(s, {sql_str(_VALID)})",
    # coalesce evaluates its second argument only where the first is NULL: text the cast
    # refuses (malformed) goes on to the validating decoder, which names the file.
    "CREATE OR REPLACE TEMP MACRO _csload_str_list(s, col, file) AS CASE "
    "WHEN s IS NULL THEN NULL ELSE coalesce("
    f"CASE WHEN {_CAST_EXACT} THEN TRY_CAST(s AS VARCHAR[]) END, "
    f"CASE WHEN regexp_full_match(s, {sql_str(_VALID)}) THEN _csload_str_list_exact(s) "
    "ELSE error('csload: malformed array in column ' || col || ' of file \"' || file || '\"') "
    "END) END",
)

# A row may be as long as DuckDB's default read buffer (32 MB): a line over the reader's
# default 2 MB (a long URL, a long array) failed its run at every sync (QA, 2026-12-07). The
# buffer is set too, at its default: it must hold a line, and is 16x max_line_size unless set.
# Measured on 1.5 M rows of gzip CSV, 4 rounds alternating: the same time with and without.
MAX_CSV_LINE_BYTES = 32_000_000
CSV_OPTIONS = (
    "auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
    r"nullstr = '\N', allow_quoted_nulls = false, strict_mode = true, "
    f"max_line_size = {MAX_CSV_LINE_BYTES}, buffer_size = {MAX_CSV_LINE_BYTES}"
)


def csv_reader_type(col: Column) -> str:
    """What the CSV reader parses a column as: string arrays stay text for `_csload_str_list`."""
    return "VARCHAR" if col.duckdb_type == "VARCHAR[]" else col.duckdb_type


# DuckDB's readers expand `*`, `?` and `[...]` in a path as a pattern, even when a file of
# that very name exists: a staging folder under `data[1]/` read `data1/`'s files instead (or
# none: a run loaded 0 rows "successfully"). Each one, put in a class of its own, matches only
# itself (measured with DuckDB 2.0.1; the reader's `filename` column still gives the path
# as it is).
_GLOB_LITERAL = str.maketrans({"[": "[[]", "*": "[*]", "?": "[?]"})


def literal_path(path: str) -> str:
    """`path` as a DuckDB reader pattern that matches that one file."""
    return path.translate(_GLOB_LITERAL)


def _file_list(files: Sequence[str]) -> str:
    return "[" + ", ".join(sql_str(literal_path(str(f))) for f in files) + "]"


def _columns_struct(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{sql_str(name)}: {sql_str(t)}" for name, t in pairs) + "}"


# The line end the reader is told, by the part's first record. Only "\n" is said: DuckDB 2.0.1
# read no row at all from a part with a header when told `new_line = '\r\n'` (and refused
# one without), while its own guess reads "\r\n" parts right. Left to guess on a "\n" part,
# it took a quoted "\r\n" in the first record for the line end and refused the part. A part
# with "\r" alone is told so (read as "\n" lines, it was one header line: 0 rows, exit 0).
_NEW_LINE = {"\n": r", new_line = '\n'", "\r\n": "", "\r": r", new_line = '\r'"}


def read_csv(files: Sequence[str], columns: Sequence[Column], gzip: bool,
             file_column: bool = True, header: bool = True, newline: str = "\n") -> str:
    """`read_csv(...)` over parts that share one header (or all have none: their columns are
    then `columns` in order) and one line end, with explicit columns, no sniffing. Values may
    be quoted or not, whatever their type (ClickHouse quotes every string, date and time)."""
    struct = _columns_struct([(c.source, csv_reader_type(c)) for c in columns])
    extra = f", filename = {sql_str(FILE_COLUMN)}" if file_column else ""
    compression = "gzip" if gzip else "none"
    return (f"read_csv({_file_list(files)}, columns = {struct}, "
            f"header = {'true' if header else 'false'}{_NEW_LINE[newline]}, "
            f"{CSV_OPTIONS}, compression = '{compression}'{extra})")


def read_json(files: Sequence[str], columns: Sequence[Column], gzip: bool,
              file_column: bool = True) -> str:
    """`read_json(...)` over NDJSON parts with explicit columns (missing keys are NULL)."""
    struct = _columns_struct([(c.source, c.duckdb_type) for c in columns])
    extra = f", filename = {sql_str(FILE_COLUMN)}" if file_column else ""
    compression = "gzip" if gzip else "none"
    return (f"read_json({_file_list(files)}, format = 'newline_delimited', columns = {struct}, "
            f"compression = '{compression}'{extra})")


# Dates and times every reader of the data holds (Python's datetime, pyarrow's to_pylist,
# Spark): years 1 to 9999. DuckDB reads years up to 294247 and BC dates; such a value loaded,
# then `csload status` and every lake sync died on it (issue 16): now it fails its run.
_RANGES = {
    "TIMESTAMP": ("TIMESTAMP '0001-01-01 00:00:00'", "TIMESTAMP '9999-12-31 23:59:59.999999'"),
    "DATE": ("DATE '0001-01-01'", "DATE '9999-12-31'"),
}
_SIGNED = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"})


def refused_values(col: Column, ref: str, key: bool) -> tuple[str, str] | None:
    """(SQL that is true where the value `ref` of `col` is refused, what is wrong with it), or
    None when any value the reader accepts is fine. `key`: the column is part of the row key,
    which the supersede rules compare as UBIGINT (a negative id aborted the sync there), and
    which a NULL cannot be (such a row loaded, and stayed beside every re-run's)."""
    base = col.duckdb_type.removesuffix("[]")
    if base in _RANGES:
        low, high = _RANGES[base]
        if col.is_array:
            return (f"(list_min({ref}) < {low} OR list_max({ref}) > {high})",
                    "a date or time out of range (years 1 to 9999)")
        return f"({ref} < {low} OR {ref} > {high})", "a date or time out of range (years 1 to 9999)"
    if key and base in _SIGNED and not col.is_array:
        return (f"({ref} IS NULL OR {ref} < 0)",
                "no id (NULL) or a negative one, out of range for the row key")
    if key and not col.is_array:
        # A NULL key equals no key: the row would never be replaced by a re-run of its day.
        return f"({ref} IS NULL)", "no id (NULL) for the row key"
    return None


def select_value(col: Column, csv: bool, alias: str = "f", *, check: bool = False,
                 key: bool = False, file: str | None = None) -> str:
    """The expression giving a column's table value from the reader's output. With `check`,
    a value `refused_values` refuses raises an error naming the column and the file (`file`:
    SQL text of the file's name, by default the reader's file column)."""
    ref = f"{alias}.{quote_ident(col.source)}"
    file = file or f"{alias}.{quote_ident(FILE_COLUMN)}"
    value = ref
    if csv and col.duckdb_type == "VARCHAR[]":
        value = f"_csload_str_list({ref}, {sql_str(col.source)}, {file})"
    refused = refused_values(col, ref, key) if check else None
    if refused is None:
        return value
    condition, problem = refused
    text = sql_str(f"column {col.name}: {problem} in file \"")
    return f"CASE WHEN {condition} THEN error({text} || {file} || '\"') ELSE {value} END"


def insert_rows(con: duckdb.DuckDBPyConnection, into: str, types: Sequence[str],
                rows: Sequence[Sequence[object]]) -> None:
    """`{into} SELECT ...` of many rows in one statement: one list parameter per column,
    unnested side by side. `executemany` runs one statement per row (7 ms for 3 rows into a
    keyed ledger table, 140 ms for 100; this: 2 ms for either), which was a visible share of
    every batch. HUGEINT values go as text (their list would not bind as numbers)."""
    if not rows:
        return
    columns = [list(values) for values in zip(*rows, strict=True)]
    select = ", ".join(f"unnest(CAST(? AS {t}[]))" for t in types)
    con.execute(f"{into} SELECT {select}", columns)


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str] | None:
    """The columns of table `table` (of the main schema) and their types; None when there is
    no such table."""
    rows = con.execute(   # lower(): DuckDB's names ignore case (csload.load.ledger)
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE lower(table_name) = lower(?) AND schema_name = 'main' AND NOT internal "
        "AND database_name = current_database()", [table]).fetchall()
    return {r[0]: r[1] for r in rows} if rows else None
