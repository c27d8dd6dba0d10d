"""Part files on disk: compression, CSV header, and turning reader errors into a part and line.

Only the first bytes of a part are read in Python (magic bytes, the CSV header). Rows are parsed
by DuckDB. When DuckDB refuses a batch, `locate_error` finds the part from the error text and
`diagnose` re-reads that one part alone to give the exact line (error path only).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb
import orjson

from csload.errors import PartParseError, part_label
from csload.load import sql
from csload.load.sqltext import quote_ident, sql_str
from csload.redact import redact_text

if TYPE_CHECKING:
    from csload.load.columns import Column

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class PartFile:
    job_id: int
    run_id: int
    part_id: int
    path: str            # absolute, as given to the reader and echoed in its errors
    bytes: int
    gzip: bool
    # CSV only: the values of the first row (None for JSONL or an empty part), a header or
    # the first record as `has_header` says.
    header: tuple[str, ...] | None
    empty: bool          # no content at all (0 bytes, or a gzip of nothing)
    # JSONL only: the keys of the part's first object (None: no object could be read there),
    # so that keys the job does not list load as text, as unknown CSV header columns do.
    keys: tuple[str, ...] | None = None
    # CSV only: whether the first row is a header (ClickHouse's CSVWithNames, the contract's
    # guess) or already data (ClickHouse's plain CSV, contract section 9 point 1).
    has_header: bool = True
    # CSV only: the line end of the first record ("\n" or "\r\n"), which the reader is told:
    # left to guess, DuckDB took a quoted "\r\n" inside a first record for the line end and
    # refused the part (a part without header starts with data; found by the property tests).
    newline: str = "\n"


# A value of a data row that no column name is: a number, a date or a time, an array.
_DATA_VALUE = re.compile(
    r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|\d{4}-\d\d-\d\d\b.*|\[.*\]", re.DOTALL)


def is_header(first_row: tuple[str, ...], fields: tuple[str, ...]) -> bool:
    """Whether a CSV part's first row is a header rather than data, for a job whose columns
    are `fields` (aliases, else field names) in file order.

    A header names the job's fields, maybe with columns the job does not list; a data row holds
    values. The row is a header when it names at least half of the job's fields (and one at
    least), and holds no number, date, time or array, which no column name is: a data row of a
    small job can name half its columns (a `screen_name` whose value is "screen_name" beside a
    time: taken for a header, the row was lost and `view_time` loaded NULL, exit 0), while a
    header that lost half its names is no header csload could read anyway. Taken for data, a
    header fails its run at line 1 rather than losing a row. With no fields to compare (a
    caller that does not know the job), any first row is a header, as before.
    """
    if not fields:
        return True
    wanted = set(fields)
    data_like = [value for value in first_row if _DATA_VALUE.fullmatch(value.strip())]
    if any(value not in wanted for value in data_like):
        return False
    # A job's own column name that looks like a number (an alias "2024") is a name in a row
    # of names only: beside a value that names nothing it is data (`1,"/blog/..."` for a
    # job of `device_id:1` and `path` failed its run at line 1 on every sync).
    if data_like and any(value not in wanted for value in first_row):
        return False
    named = sum(1 for value in set(first_row) if value in wanted)
    return named >= 1 and 2 * named >= len(wanted)


def _open_text(path: str, is_gzip: bool) -> io.TextIOWrapper:
    # To count lines: a byte that is not UTF-8 (the error being located) is one character.
    if is_gzip:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace",
                                newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def inspect_part(job_id: int, run_id: int, part_id: int, path: Path, fmt: str,
                 fields: tuple[str, ...] = ()) -> PartFile:
    """Compression by magic bytes, and for CSV the first row and whether it is a header (see
    `is_header`; `fields`: the job's file columns in order). Never reads past the first row."""
    resolved = str(path.resolve())
    label = part_label(job_id, run_id, part_id)
    try:
        size = path.stat().st_size
        with open(resolved, "rb") as fh:
            is_gzip = fh.read(2) == GZIP_MAGIC
        header: tuple[str, ...] | None = None
        if fmt == "CSV":
            with gzip.open(resolved, "rb") if is_gzip else open(resolved, "rb") as fh:
                record, newline = _first_record(fh)
            first = next(csv.reader(io.StringIO(record.decode("utf-8"), newline="")), None)
            if first is not None:
                header = tuple(first)
                if header and header[0].startswith("\ufeff"):
                    header = (header[0][1:], *header[1:])
            empty = first is None
        else:
            with gzip.open(resolved, "rb") if is_gzip else open(resolved, "rb") as fh:
                head = fh.read(1)
                empty = not head
                keys = None if empty else _first_keys(head + fh.readline(_KEYS_LINE_MAX), fh)
    except (UnicodeDecodeError, csv.Error) as exc:
        # Only the CSV header was being read: name its line, like every parse error does.
        raise PartParseError(f"{label}: line 1: cannot read the header: {exc}", job_id=job_id,
                             run_id=run_id, part_id=part_id, line=1) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise PartParseError(f"{label}: cannot read the part: {exc}", job_id=job_id,
                             run_id=run_id, part_id=part_id, line=1 if fmt == "CSV" else None
                             ) from None
    if fmt == "CSV":
        has_header = header is not None and is_header(header, fields)
        return PartFile(job_id, run_id, part_id, resolved, size, is_gzip, header, empty,
                        has_header=has_header, newline=newline)
    return PartFile(job_id, run_id, part_id, resolved, size, is_gzip, None, empty, keys)


# The first object of a JSONL part is read whole only up to this size (one row is far less).
_KEYS_LINE_MAX = 1 << 20
# A CSV part's first record is looked for in this many bytes, read this many at a time.
_RECORD_MAX = 1 << 20
_RECORD_CHUNK = 16 << 10


_LINE_END = re.compile(rb"[\r\n]")


def _record_end(head: bytes, at_end: bool) -> tuple[int, str] | None:
    """The index of the last byte of the line end that ends the first CSV record of `head`,
    and that line end ("\n", "\r\n" or "\r"), if there is one: the first one outside double
    quotes (a doubled quote toggles twice, so it cancels out). A "\r" that ends `head` is one
    only `at_end` (else its "\n" may be in the next chunk)."""
    start = 0
    quoted = False
    while (found := _LINE_END.search(head, start)) is not None:
        end = found.start()
        quoted ^= head.count(b'"', start, end) % 2 == 1
        if not quoted:
            if head[end:end + 1] == b"\n":
                return end, "\n"
            if end + 1 == len(head) and not at_end:
                return None
            return (end + 1, "\r\n") if head[end + 1:end + 2] == b"\n" else (end, "\r")
        start = end + 1
    return None


def _first_record(fh: _Reads) -> tuple[bytes, str]:
    """The bytes of a CSV part's first record (all that was read when it has no line end
    within _RECORD_MAX bytes) and its line end. A part with "\r" alone for line ends (old
    Mac style) is said so: read as "\n" lines, it was one header line, 0 rows "loaded"."""
    head = b""
    while True:
        chunk = fh.read(_RECORD_CHUNK)
        head += chunk
        found = _record_end(head, at_end=not chunk)
        if found is not None:
            end, newline = found
            return head[:end + 1], newline
        if not chunk or len(head) >= _RECORD_MAX:
            return head, "\n"


class _Lines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class _Reads(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _first_keys(line: bytes, rest: _Lines) -> tuple[str, ...] | None:
    """The keys of the first non-blank JSONL line, or None (the reader reports a bad line)."""
    for _ in range(8):
        if line.strip():
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                return None
            return tuple(value) if isinstance(value, dict) else None
        line = rest.readline(_KEYS_LINE_MAX)
        if not line:
            return None
    return None


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CSV_FILE = re.compile(r"^\s*file = (.+)$", re.MULTILINE)
_QUOTED_FILE = re.compile(r'(?:in file|of file) "(.+?)"(?:,| in line|:|$)', re.MULTILINE)


def locate_error(message: str, parts: dict[str, PartFile]) -> PartFile | None:
    """The part a DuckDB error names, if it names one of ours."""
    for pattern in (_CSV_FILE, _QUOTED_FILE):
        for match in pattern.finditer(message):
            name = match.group(1).strip()
            if name in parts:
                return parts[name]
    # A path may itself contain '"' or ', ': fall back to a plain search.
    for name in sorted(parts, key=len, reverse=True):
        if name in message:
            return parts[name]
    return None


_NOISE = (
    re.compile(r"^(Conversion|Invalid Input|Parser) Error:\s*"),
    re.compile(r"CSV Error on Line: \d+\s*"),
    re.compile(r' in file ".*?"'),
    re.compile(r",? at byte \d+"),
    re.compile(r",? in line \d+"),
    re.compile(r' of file ".*?"'),
)


# Where DuckDB's CSV error text turns from the error to its advice and option list.
_CSV_TAIL = re.compile(r"\n\s*\n(?:Possible fixes:|\s*file = )")
# The sentences DuckDB's CSV reader states its error with, after the offending row.
_CSV_REASON = re.compile(
    r"(?:Expected Number of Columns|Value with unterminated quote|Invalid unicode|"
    r"Error when converting column|Maximum line size|Quote should be followed|"
    r"Could not convert|The CSV file)")


def reason(message: str) -> str:
    """The useful sentence of a DuckDB reader error, without paths or row data."""
    text = _NOISE[0].sub("", message.strip())
    if "Original Line:" in text:
        # The offending row follows "Original Line:" and may span lines (an unterminated
        # quote swallows the rest of the file), so "the line after it" can be row data, which
        # was then shown as the reason (found by tests/reliability): take DuckDB's sentence,
        # else the last line before its advice.
        head = _CSV_TAIL.split(text, maxsplit=1)[0]
        after = [ln.strip() for ln in head.split("Original Line:", 1)[1].splitlines()[1:]]
        known = [ln for ln in after if _CSV_REASON.match(ln)]
        last = [ln for ln in after if ln]
        if known or last:
            text = (known or last)[0 if known else -1]
    lines = [ln.strip() for ln in text.splitlines()]
    keep = [_CSV_LINE.sub("", ln).strip() for ln in lines
            if ln and not ln.startswith(("Original Line:", "Possible", "*"))]
    keep = [ln for ln in keep if ln]
    text = keep[0] if keep else message.strip()
    for pattern in _NOISE:
        text = pattern.sub("", text)
    return redact_text(text.strip(" :")[:300])


def parse_error(part: PartFile, line: int | None, message: str) -> PartParseError:
    label = part_label(part.job_id, part.run_id, part.part_id)
    where = f"line {line}" if line is not None else "line unknown"
    return PartParseError(f"{label}: {where}: {reason(message)}", job_id=part.job_id,
                          run_id=part.run_id, part_id=part.part_id, line=line)


# --- exact line of an error, by re-reading the one failing part -------------------------------

def _diag_connection() -> duckdb.DuckDBPyConnection:
    # One thread keeps row order = file order, so record numbers are exact.
    con = duckdb.connect(config={"threads": 1})
    for macro in sql.MACROS:
        con.execute(macro)
    return con


def _csv_record_to_line(part: PartFile, record: int) -> int:
    """Physical line (1-based) where CSV record `record` (1-based, counted from the first
    row of the file, header or not) starts."""
    with _open_text(part.path, part.gzip) as text:
        reader = csv.reader(text)
        try:
            for _ in range(record - 1):
                next(reader)
        except (StopIteration, csv.Error, OSError, EOFError, zlib.error):
            return record
        return reader.line_num + 1


def _checked_values(columns: list[Column], csv: bool, keys: tuple[str, ...],
                    file: str | None = None) -> str:
    """The loader's SELECT list (csload.load.batch_sql `insert_group`), value checks included."""
    return ", ".join(
        f"{sql.select_value(c, csv, check=True, key=c.name in keys, file=file)} AS c{i}"
        for i, c in enumerate(columns))


def _first_refused(con: duckdb.DuckDBPyConnection, reader: str, columns: list[Column],
                   keys: tuple[str, ...]) -> tuple[int, str] | None:
    """(the 1-based row of `reader`, what is wrong) of the first value the loader refuses
    outside the reader itself: a malformed string array, a value `sql.refused_values`
    refuses. DuckDB's error for those names the file but not the row."""
    checks = [(f"NOT _csload_str_list_ok({quote_ident(c.source)})", "malformed array value")
              for c in columns if c.duckdb_type == "VARCHAR[]"]
    for c in columns:
        refused = sql.refused_values(c, quote_ident(c.source), c.name in keys)
        if refused is not None:
            checks.append((refused[0], f"column {c.name}: {refused[1]}"))
    if not checks:
        return None
    firsts = ", ".join(f"min(rn) FILTER (WHERE {condition})" for condition, _ in checks)
    row = con.execute(
        f"SELECT {firsts} FROM (SELECT row_number() OVER () AS rn, * FROM {reader})"  # noqa: S608
    ).fetchone()
    found = [(int(rn), what) for rn, (_, what) in zip(row or (), checks, strict=True)
             if rn is not None]
    return min(found) if found else None


def _diagnose_csv(part: PartFile, columns: list[Column], message: str,
                  keys: tuple[str, ...] = ()) -> PartParseError:
    con = _diag_connection()
    try:
        reader = sql.read_csv([part.path], columns, part.gzip, header=part.has_header,
                              newline=part.newline)
        values = _checked_values(columns, True, keys)
        record: int | None = None
        try:
            # Every column is used, so projection pushdown cannot skip a bad value.
            query = f"SELECT max(hash(COLUMNS(*))) FROM (SELECT {values} FROM {reader} AS f)"  # noqa: S608
            con.execute(query).fetchall()
        except duckdb.Error as exc:
            message = str(exc)
            found = _CSV_LINE.search(message)
            if found:
                record = int(found.group(1))
        if record is None:
            refused = _first_refused(con, reader, columns, keys)
            if refused is not None:
                record = refused[0] + part.has_header   # + the header record
                message = refused[1]
    finally:
        con.close()
    line = _csv_record_to_line(part, record) if record is not None else None
    return parse_error(part, line, message)


def _lines(part: PartFile) -> Iterator[bytes]:
    with gzip.open(part.path, "rb") if part.gzip else open(part.path, "rb") as fh:
        yield from fh


def _json_fails(con: duckdb.DuckDBPyConnection, columns: list[Column], lines: list[bytes],
                tmp: Path, keys: tuple[str, ...]) -> str | None:
    tmp.write_bytes(b"".join(lines))
    reader = sql.read_json([str(tmp)], columns, gzip=False, file_column=False)
    values = _checked_values(columns, False, keys, file=sql_str(str(tmp)))
    try:
        con.execute(f"SELECT max(hash(COLUMNS(*))) FROM (SELECT {values} FROM {reader} AS f)"  # noqa: S608
                    ).fetchall()
    except duckdb.Error as exc:
        return str(exc)
    return None


def _diagnose_json(part: PartFile, columns: list[Column], message: str,
                   keys: tuple[str, ...] = ()) -> PartParseError:
    """NDJSON lines are independent: test chunks of lines, then halve the failing chunk.

    DuckDB's own line numbers for JSON are approximate (it says so), hence this search.
    """
    con = _diag_connection()
    chunk_size = 20_000
    try:
        with tempfile.TemporaryDirectory(prefix="csload-diag-") as tmpdir:
            tmp = Path(tmpdir) / "lines.jsonl"
            first_line = 1
            chunk: list[bytes] = []
            found: tuple[int, list[bytes], str] | None = None
            for raw in _lines(part):
                chunk.append(raw)
                if len(chunk) == chunk_size:
                    failure = _json_fails(con, columns, chunk, tmp, keys)
                    if failure:
                        found = (first_line, chunk, failure)
                        break
                    first_line += len(chunk)
                    chunk = []
            if found is None and chunk:
                failure = _json_fails(con, columns, chunk, tmp, keys)
                if failure:
                    found = (first_line, chunk, failure)
            if found is None:
                return parse_error(part, None, message)
            start, lines, message = found
            while len(lines) > 1:
                half = len(lines) // 2
                failure = _json_fails(con, columns, lines[:half], tmp, keys)
                if failure:
                    lines, message = lines[:half], failure
                else:
                    start += half
                    lines = lines[half:]
            return parse_error(part, start, message)
    finally:
        con.close()


def diagnose(part: PartFile, columns: list[Column], fmt: str, message: str,
             keys: tuple[str, ...] = ()) -> PartParseError:
    """A PartParseError naming the exact line of the first error in one part (`keys`: the
    row key's columns, whose values are checked as the loader does)."""
    try:
        if fmt == "CSV":
            return _diagnose_csv(part, columns, message, keys)
        return _diagnose_json(part, columns, message, keys)
    except (OSError, EOFError, zlib.error, duckdb.Error) as exc:
        return parse_error(part, None, f"{reason(message)} ({exc})")
