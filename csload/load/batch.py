"""A batch's runs ready to load, and the reader calls that will read their parts.

A `PendingRun` is a staged run with its parts inspected (csload.load.parts). `read_groups` cuts
a batch of pending runs into `ReadGroup`s: the parts one `read_csv` / `read_json` statement
reads, with the columns it reads them as (one job, one format, one compression, one header or
one set of extra JSON keys; JSONL in pieces of at most csload.load.memory.JSON_STATEMENT_BYTES).
A part that cannot be read as its job's raises PartFailed naming its run
(csload.load.failures); `reader_failure` finds the run of a part DuckDB's reader refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from csload.errors import ConfigError
from csload.load import memory
from csload.load.columns import Column, JobLayout, unknown_column
from csload.load.failures import PartFailed, Unattributed, damage
from csload.load.parts import PartFile, diagnose, locate_error, parse_error
from csload.load.supersede import RunWindow, run_order
from csload.transfer.staged import StagedRun


@dataclass
class PendingRun:
    """A run being applied, with its inspected parts."""

    staged: StagedRun
    layout: JobLayout
    files: list[PartFile] = field(default_factory=list)

    @property
    def run_id(self) -> int:
        return self.staged.run.run_id

    @property
    def window(self) -> RunWindow:
        """The run's window and its place in the order of runs (csload.load.supersede)."""
        run = self.staged.run
        return RunWindow(self.run_id, self.layout.job_id, run.start_date, run.end_date,
                         run_order(run))


@dataclass(frozen=True)
class ReadGroup:
    """Parts read by one reader call: one job, one format, one compression, one header (or
    none: CSV parts without a header row, whose columns are the job's in order)."""

    pending: tuple[PendingRun, ...]
    columns: tuple[Column, ...]
    files: tuple[PartFile, ...]
    gzip: bool
    csv: bool
    header: bool = True
    newline: str = "\n"


def damaged_part(part: PartFile | None, batch: list[PendingRun]) -> PartFailed | None:
    """Its run's failure as a damaged download, if `part` (the one a reader error names) is
    gzip and its stream is damaged."""
    if part is None or not part.gzip:
        return None
    item = next(i for i in batch if i.run_id == part.run_id)
    found = damage(item.staged, part.part_id)
    return None if found is None else PartFailed(part.run_id, found)


def damaged_in(message: str, parts: dict[str, PartFile], batch: list[PendingRun]
               ) -> PartFailed | None:
    """The damaged download a reader's I/O error is about: the part it names; else, when it
    names none but speaks of gzip (DuckDB's "Input is not a GZIP stream" for bytes after a
    gzip stream that are not gzip), the first gzip part of the batch whose stream is damaged.
    Such an error failed the whole table's batch, naming no part, on every sync. Error path
    only: it inflates the batch's parts."""
    part = locate_error(message, parts)
    if part is not None or "gzip" not in message.lower():
        return damaged_part(part, batch)
    for candidate in parts.values():
        if (found := damaged_part(candidate, batch)) is not None:
            return found
    return None


def pieces_by_size(members: list[tuple[PendingRun, PartFile]], limit: int
                   ) -> list[list[tuple[PendingRun, PartFile]]]:
    """`members` cut, in order, into pieces whose parts add up to at most `limit` bytes (a
    larger part makes a piece alone)."""
    chunks: list[list[tuple[PendingRun, PartFile]]] = []
    size = 0
    for member in members:
        if not chunks or size + member[1].bytes > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(member)
        size += member[1].bytes
    return chunks


def _check_headerless(layout: JobLayout, part: PartFile) -> None:
    """A CSV part whose first row is no header must be a row of exactly the job's fields."""
    row = part.header or ()
    if len(row) != len(layout.columns):
        raise PartFailed(part.run_id, parse_error(
            part, 1, f"the first row is not a header naming the job's fields, nor a row of "
            f"its {len(layout.columns)} fields (it has {len(row)} values)"))


def _unknown_or_fail(layout: JobLayout, name: str, part: PartFile) -> Column:
    """A text column for a file column the job does not list; an unusable name fails the run."""
    try:
        return unknown_column(layout.job_id, name)
    except ConfigError as exc:
        raise PartFailed(part.run_id, exc) from None


def read_groups(batch: list[PendingRun]) -> list[ReadGroup]:
    """The reader calls that read the batch's parts (empty parts are read by none)."""
    groups: dict[tuple[int, bool, bool, bool, str, tuple[str, ...] | None],
                 list[tuple[PendingRun, PartFile]]] = {}
    for item in batch:
        csv = item.staged.job.format == "CSV"
        sources = item.layout.by_source()
        for part in item.files:
            if part.empty:
                continue
            # CSV: parts that share a header, or have none; JSONL: parts that share their
            # extra keys.
            shape: tuple[str, ...] | None
            if not csv:
                shape = tuple(sorted(k for k in part.keys or () if k not in sources))
            elif part.has_header:
                shape = part.header
            else:
                _check_headerless(item.layout, part)
                shape = ()
            key = (item.layout.job_id, csv, part.gzip, part.has_header, part.newline, shape)
            groups.setdefault(key, []).append((item, part))
    out = []
    for (_job_id, csv, gzip, header, newline, shape), members in groups.items():
        layout = members[0][0].layout
        assert shape is not None
        if csv and not header:
            columns = layout.columns
        elif csv:
            columns = _header_columns(layout, shape, members[0][1])
        else:
            columns = _json_columns(layout, shape, members[0][1])
        if not columns:
            continue
        for chunk in ([members] if csv
                      else pieces_by_size(members, memory.JSON_STATEMENT_BYTES)):
            seen_runs: dict[int, PendingRun] = {}
            for item, _ in chunk:
                seen_runs.setdefault(item.run_id, item)
            out.append(ReadGroup(tuple(seen_runs.values()), tuple(columns),
                                 tuple(p for _, p in chunk), bool(gzip), bool(csv),
                                 bool(header), newline))
    return out


def _header_columns(layout: JobLayout, header: tuple[str, ...], part: PartFile
                    ) -> tuple[Column, ...]:
    by_source = layout.by_source()
    # Not a header at all (another format, an HTML page) first: said as "repeats a
    # column", a JSON line looked like a damaged header (found by tests/reliability).
    if header and not any(h in by_source for h in header):
        raise PartFailed(part.run_id, parse_error(
            part, 1, "the first row is not a header naming the job's fields"))
    if len(set(header)) != len(header):
        raise PartFailed(part.run_id, parse_error(part, 1, "the header repeats a column"))
    # Read by the header, a column it lacks loaded NULL in every row of the part, exit 0.
    lacking = [c.source for c in layout.columns if c.source not in set(header)]
    if lacking:
        shown = ", ".join(repr(name) for name in lacking[:5])
        raise PartFailed(part.run_id, parse_error(
            part, 1, f"the header lacks {len(lacking)} of the job's columns ({shown}"
            f"{', ...' if len(lacking) > 5 else ''}): the part is not the job's export"))
    columns = []
    names: set[str] = set()
    for name in header:
        col = by_source.get(name) or _unknown_or_fail(layout, name, part)
        if col.name in names:
            raise PartFailed(part.run_id, parse_error(
                part, 1, f"header columns collide on column name {col.name!r}"))
        names.add(col.name)
        columns.append(col)
    return tuple(columns)


def _json_columns(layout: JobLayout, extra: tuple[str, ...], part: PartFile
                  ) -> tuple[Column, ...]:
    """The job's columns plus the keys of the part's first object that the job does not
    list: loaded as text with a warning, as CSV does with unknown header columns (before,
    read_json's explicit columns dropped them silently; found by tests/reliability)."""
    columns = list(layout.columns)
    names = {c.name for c in columns}
    for key in extra:
        col = _unknown_or_fail(layout, key, part)
        if col.name in names:
            raise PartFailed(part.run_id, parse_error(
                part, 1, f"key {key!r} collides with another column on {col.name!r}"))
        names.add(col.name)
        columns.append(col)
    return tuple(columns)


def reader_failure(exc: duckdb.Error, parts: dict[str, PartFile], batch: list[PendingRun]
                   ) -> Exception:
    """Turn a reader error into the failing run's PartParseError (exact line), a damaged
    download, or Unattributed when DuckDB did not name the part."""
    message = str(exc)
    part = locate_error(message, parts)
    if part is None:
        return Unattributed(f"the data does not parse: {message.splitlines()[0][:300]}")
    damaged = damaged_part(part, batch)
    if damaged is not None:
        return damaged
    item = next(i for i in batch if i.run_id == part.run_id)
    columns = [c for g in read_groups([item]) if part in g.files for c in g.columns]
    return PartFailed(part.run_id, diagnose(part, columns, item.staged.job.format, message,
                                            item.layout.key_columns or ()))
