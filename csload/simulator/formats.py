"""The export file formats (contract section 6): typed rows in, part bodies (uncompressed) out.

CSV: RFC 4180 with `,` and `"`, UTF-8, `\\n` line ends, the header row in every part. A value is
quoted only when it must be: when it contains `,`, `"`, `\\r` or `\\n`, is the empty string (so
it differs from a missing value) or is the text `\\N` itself; inner `"` are doubled. NULL is
`\\N`, unquoted. Arrays are `[1,2]` / `['a','b']`: strings and timestamps in single quotes, with
`\\'` for a quote and `\\\\` for a backslash; the array text is then quoted as any CSV value.
Timestamps are `YYYY-MM-DD HH:MM:SS` (some arrays only to the minute, see
`rows.MINUTE_PRECISION_IN_CSV`), dates `YYYY-MM-DD`, floats plainly (`57.25`, `100`).

JSONL: one object per line, keys in column order, UInt64 as exact integers, timestamps and
dates as the same strings as CSV, arrays as JSON arrays, null as null; the body ends with `\\n`.

A run is split into parts of at most `max_bytes` uncompressed bytes (at least one row each).

ClickHouse's defaults, where the contract guessed (section 9; `Variants`, each its own switch):
no CSV header row (`csv_without_header`); every String, Date and DateTime value double-quoted,
`""` for the empty string, arrays written as TabSeparated writes them (`['a','b']` with the
backslash escapes `\\\\ \\' \\n \\t \\r \\0 \\b \\f` inside an element) and then quoted as a CSV
string (`clickhouse_csv_quoting`); UInt64/Int64 as JSON strings, arrays of them as arrays of
strings (`json_quoted_int64`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from csload.simulator.config import Variants
from csload.simulator.rows import Column

NULL = "\\N"
_NEEDS_QUOTES = re.compile(r'[",\r\n]')
_WRAPPER = re.compile(r"^(Array|Nullable)\((.+)\)$")

Encoder = Callable[[Any], str]


def _base_type(source_type: str) -> tuple[bool, str]:
    """(is an array, the innermost scalar type)."""
    is_array = source_type.startswith("Array(")
    while (match := _WRAPPER.match(source_type)) is not None:
        source_type = match.group(2)
    return is_array, source_type


def csv_quote(text: str) -> str:
    if not text or text == NULL or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def format_float(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def format_datetime(value: datetime, minute: bool = False) -> str:
    return value.isoformat(" ", "minutes" if minute else "seconds")


def _array_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ClickHouse's TabSeparated escapes inside an array element (clickhouse_csv_quoting).
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t",
                              "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"})


def always_quote(text: str) -> str:
    """ClickHouse's CSV string: always double-quoted, inner quotes doubled."""
    return '"' + text.replace('"', '""') + '"'


def _tsv_array_string(text: str) -> str:
    return "'" + text.translate(_TSV_ESCAPES) + "'"


def _clickhouse_encoder(scalar: str, minute: bool, in_array: bool) -> Encoder:
    """`_scalar_encoder`'s values, quoted as ClickHouse quotes them: strings, dates and times
    always, and strings inside arrays with the TabSeparated escapes."""
    if not scalar.startswith(("UInt", "Int", "Float")) and scalar not in ("Date", "DateTime"):
        return _tsv_array_string if in_array else always_quote
    encode = _scalar_encoder(scalar, minute, in_array)
    if in_array or scalar not in ("Date", "DateTime"):
        return encode
    return lambda v: '"' + encode(v) + '"'


def _scalar_encoder(scalar: str, minute: bool, in_array: bool) -> Encoder:
    if scalar.startswith(("UInt", "Int")):
        return str
    if scalar.startswith("Float"):
        return format_float
    if scalar == "Date":
        return (lambda v: f"'{v.isoformat()}'") if in_array else date.isoformat
    if scalar == "DateTime":
        if in_array:
            return lambda v: "'" + format_datetime(v, minute) + "'"
        return lambda v: format_datetime(v, minute)
    return _array_string if in_array else csv_quote


def csv_encoder(column: Column, clickhouse: bool = False) -> Encoder:
    """Text of one CSV value of this column (None -> \\N); `clickhouse`: its quoting."""
    is_array, scalar = _base_type(column.source_type)
    scalar_encoder = _clickhouse_encoder if clickhouse else _scalar_encoder
    if is_array:
        element = scalar_encoder(scalar, column.minute_precision, True)
        quote = always_quote if clickhouse else csv_quote

        def encode_array(values: Any) -> str:
            if not values:
                return quote("[]") if clickhouse else "[]"
            return quote("[" + ",".join(map(element, values)) + "]")

        return encode_array
    encode = scalar_encoder(scalar, column.minute_precision, False)
    if not column.source_type.startswith("Nullable("):
        return encode
    return lambda v: NULL if v is None else encode(v)


def _json_converter(column: Column, quoted_int64: bool = False
                    ) -> Callable[[Any], Any] | None:
    is_array, scalar = _base_type(column.source_type)
    minute = column.minute_precision
    if scalar == "DateTime":
        if is_array:
            return lambda vs: [format_datetime(v, minute) for v in vs]
        return lambda v: None if v is None else format_datetime(v, minute)
    if quoted_int64 and scalar in ("UInt64", "Int64"):
        if is_array:
            return lambda vs: [str(v) for v in vs]
        return lambda v: None if v is None else str(v)
    if scalar == "Date":
        if is_array:
            return lambda vs: [v.isoformat() for v in vs]
        return lambda v: None if v is None else v.isoformat()
    return None


def csv_lines(rows: Sequence[dict[str, Any]], columns: Sequence[Column],
              variants: Variants | None = None) -> tuple[bytes, list[bytes]]:
    """The header line (b"" without one) and one line per row, each ending with \\n."""
    clickhouse = variants is not None and variants.clickhouse_csv_quoting
    quote = always_quote if clickhouse else csv_quote
    header = (",".join(quote(c.name) for c in columns) + "\n").encode()
    if variants is not None and variants.csv_without_header:
        header = b""
    encoders = [(c.name, csv_encoder(c, clickhouse)) for c in columns]
    lines = [
        (",".join([encode(row[name]) for name, encode in encoders]) + "\n").encode()
        for row in rows
    ]
    return header, lines


def jsonl_lines(rows: Sequence[dict[str, Any]], columns: Sequence[Column],
                variants: Variants | None = None) -> list[bytes]:
    quoted = variants is not None and variants.json_quoted_int64
    converters = [(c.name, conv) for c in columns
                  if (conv := _json_converter(c, quoted)) is not None]
    out = []
    for row in rows:
        if converters:
            row = dict(row)
            for name, convert in converters:
                row[name] = convert(row[name])
        out.append(orjson.dumps(row) + b"\n")
    return out


def split_parts(header: bytes, lines: Sequence[bytes], max_bytes: int) -> list[bytes]:
    """Group lines into parts of at most max_bytes (with the header in each part)."""
    parts: list[bytes] = []
    current: list[bytes] = [header]
    size = len(header)
    for line in lines:
        if len(current) > 1 and size + len(line) > max_bytes:
            parts.append(b"".join(current))
            current, size = [header], len(header)
        current.append(line)
        size += len(line)
    if len(current) > 1 or not parts:
        parts.append(b"".join(current))
    return parts


def encode_parts(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: str,
                 max_bytes: int, variants: Variants | None = None) -> list[bytes]:
    """The uncompressed bodies of a run's parts (`variants`: the section 9 file variants)."""
    if fmt == "CSV":
        header, lines = csv_lines(rows, columns, variants)
        return split_parts(header, lines, max_bytes)
    return split_parts(b"", jsonl_lines(rows, columns, variants), max_bytes)
