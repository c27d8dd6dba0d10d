"""Would csload load this file? The sample, cut at its last complete record, loaded into an
in-memory DuckDB by the loader `csload sync` uses (`DuckDBStore.apply` with a `StagedRun`).

When the loader refuses it, its PartParseError names the part and line; doctor then finds the
column and value: it loads that one record again with some values kept and the others NULL,
narrowing down (`_alone`) to each column whose value fails the load on its own. Blocking: run
it in a worker thread.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from csload.api.models import Job, Run
from csload.doctor.report import clean
from csload.doctor.textscan import NULL, NotCsv, Record, csv_records, jsonl_lines
from csload.errors import CsloadError, PartParseError
from csload.load.columns import job_layout
from csload.load.duckdb import DuckDBStore
from csload.load.parts import is_header
from csload.transfer.staged import StagedPart, StagedRun

# Columns searched when a record does not load (a job has at most ~80 fields).
MAX_COLUMN_TRIALS = 200


@dataclass
class TrialResult:
    rows: int = 0
    error: str | None = None
    line: int | None = None
    # (column, value as written) of each column whose value alone fails the load.
    culprits: list[tuple[str, str]] = field(default_factory=list)

    @property
    def loaded(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "rows": self.rows, "error": self.error,
                "line": self.line,
                "culprits": [{"column": c, "value": v} for c, v in self.culprits]}


@contextmanager
def quiet_loader() -> Iterator[None]:
    """The loader's warnings (a field it loads as text, a run that failed) are doctor's
    findings, reported by doctor; not log lines besides them."""
    logger = logging.getLogger("csload.load")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Trials:
    """One in-memory store; each load is a run of its own (a loaded run is never reloaded)."""

    def __init__(self, job: Job, run: Run, part_id: int, folder: Path, compress: bool) -> None:
        self.job, self.run, self.part_id = job, run, part_id
        self.folder, self.compress = folder, compress
        self.store = DuckDBStore.open(Path(":memory:"))
        self.count = 0

    def load(self, data: bytes) -> tuple[int, CsloadError | None]:
        self.count += 1
        suffix = ".csv" if self.job.format == "CSV" else ".jsonl"
        path = self.folder / f"trial-{self.count}-part-{self.part_id:05d}{suffix}"
        if self.compress:
            path = path.with_name(path.name + ".gz")
            data = gzip.compress(data, compresslevel=1, mtime=0)
        path.write_bytes(data)
        try:
            run = self.run if self.count == 1 else dataclasses.replace(
                self.run, run_id=self.run.run_id * 1000 + self.count)
            staged = StagedRun(job=self.job, run=run,
                               parts=(StagedPart(self.part_id, path, len(data)),))
            outcome = self.store.apply([staged])[0]
        finally:
            path.unlink(missing_ok=True)
        if outcome.status == "loaded":
            return outcome.rows_read, None
        return 0, outcome.error or CsloadError(f"the loader answered {outcome.status}")

    def close(self) -> None:
        self.store.close()


def load_trial(job: Job, run: Run, part_id: int, text: str, *, compress: bool,
               folder: Path) -> TrialResult:
    """Load `text` (complete records) as part `part_id` of `run`; on failure, find why."""
    with quiet_loader():
        trials = _Trials(job, run, part_id, folder, compress)
        try:
            rows, error = trials.load(text.encode())
            if error is None:
                return TrialResult(rows=rows)
            result = TrialResult(error=clean(error, 500))
            if isinstance(error, PartParseError) and error.line is not None:
                result.line = error.line
                result.culprits = _culprits(trials, job, text, error.line)
            return result
        finally:
            trials.close()


def _culprits(trials: _Trials, job: Job, text: str, line: int) -> list[tuple[str, str]]:
    if job.format == "CSV":
        return _csv_culprits(trials, job, text, line)
    return _json_culprits(trials, job, text, line)


def _csv_culprits(trials: _Trials, job: Job, text: str, line: int) -> list[tuple[str, str]]:
    try:
        records: list[Record] = []
        for record in csv_records(text):
            records.append(record)
            if record.line >= line:
                break
    except NotCsv:
        return []
    failing = next((r for r in records if r.line == line), None)
    if failing is None:
        return []
    first = records[0]
    names = tuple(f.column_name for f in job.fields)
    header = first is not failing and is_header(first.values, names)
    head = text[first.start:first.end] if header else ""
    columns = list(first.values) if header else list(names)

    keys = _key_sources(job)

    def fails(kept: set[int]) -> bool:
        values = [c.raw if i in kept else "0" if i < len(columns) and columns[i] in keys
                  else NULL for i, c in enumerate(failing.cells)]
        return trials.load((head + ",".join(values) + "\n").encode())[1] is not None

    return [(clean(columns[i] if i < len(columns) else f"column {i + 1}", 80),
             clean(failing.cells[i].raw, 120))
            for i in _alone(len(failing.cells), fails)]


def _key_sources(job: Job) -> set[str]:
    """The file names of the job's row-key columns: left out of a trial, they are 0, not NULL
    (a row without its key fails, whatever its other values)."""
    try:
        layout = job_layout(job)
    except CsloadError:
        return set()
    return {c.source for c in layout.columns if c.name in (layout.key_columns or ())}


def _json_culprits(trials: _Trials, job: Job, text: str, line: int
                   ) -> list[tuple[str, str]]:
    row = next((raw for number, raw in jsonl_lines(text) if number == line), None)
    if row is None:
        return []
    try:
        value = orjson.loads(row)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(value, dict):
        return []
    keys = list(value)
    key_sources = _key_sources(job)

    def fails(kept: set[int]) -> bool:
        row = {k: (v if i in kept else 0 if k in key_sources else None)
               for i, (k, v) in enumerate(value.items())}
        return trials.load(orjson.dumps(row) + b"\n")[1] is not None

    return [(clean(keys[i], 80), clean(orjson.dumps(value[keys[i]]).decode(), 120))
            for i in _alone(len(keys), fails)]


def _alone(count: int, fails: Callable[[set[int]], bool]) -> list[int]:
    """The columns (of `count`) whose value fails the load, by group testing: a set of kept
    values (the others NULL) that loads holds no such column, one that fails is halved. With
    one bad value among n columns that is about 2 log2(n) loads instead of n (measured on a
    sessions row of 48 columns with one bad value: 15 loads in all, the sample's own and the
    all-NULL one included, 1.2 s; one load per column would have been 50). Nothing when the
    record fails with every value NULL: its shape is wrong, not a value."""
    if fails(set()):
        return []

    def search(columns: list[int]) -> list[int]:
        if not fails(set(columns)):
            return []
        if len(columns) == 1:
            return columns
        half = len(columns) // 2
        return search(columns[:half]) + search(columns[half:])

    return search(list(range(min(count, MAX_COLUMN_TRIALS))))
