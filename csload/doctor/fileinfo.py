"""What a sampled part really is: header or not, quoting style, how 64-bit integers and
timestamp arrays are written, and its columns against the job's fields (contract section 9,
points 1-5). Reads the first `MAX_RECORDS` records of a sample's complete text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from csload.api.models import Job
from csload.api.schemas import FieldSpec, load_schema
from csload.doctor.report import clean
from csload.doctor.textscan import NotCsv, Record, csv_records, jsonl_lines
from csload.load.parts import is_header

MAX_RECORDS = 2000
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?")
_INT_RANGES = {"UInt8": (0, 2**8 - 1), "UInt16": (0, 2**16 - 1), "UInt32": (0, 2**32 - 1),
               "Int8": (-(2**7), 2**7 - 1), "Int16": (-(2**15), 2**15 - 1),
               "Int32": (-(2**31), 2**31 - 1)}
_NUMBER_TYPES = ("UInt", "Int", "Float")
QUOTING = {
    "minimal": "minimal RFC 4180 quoting (only values with a comma, quote or line break, and "
               "empty strings)",
    "clickhouse": "every string, date and array quoted, numbers bare (ClickHouse's CSV)",
    "all": "every value quoted, numbers included",
    "mixed": "mixed: some plain strings quoted, others not",
    "unknown": "not known: no text value in the sample",
}


@dataclass
class FileFacts:
    """The findings; `lines()` says them, `to_json()` gives them to machines."""

    format: str
    records: int = 0
    header: bool | None = None
    first_row: tuple[str, ...] = ()
    quoting: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    int64: dict[str, Counter[str]] = field(default_factory=dict)
    time_arrays: dict[str, Counter[str]] = field(default_factory=dict)
    wide: dict[str, int] = field(default_factory=dict)
    widths: Counter[int] = field(default_factory=Counter)
    expected_width: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def int64_style(self) -> str | None:
        total: Counter[str] = sum(self.int64.values(), Counter())
        if not total:
            return None
        if total["string"] and total["number"]:
            return "both"
        return "strings" if total["string"] else "numbers"

    def lines(self) -> list[str]:
        out = [f"records read: {self.records}"]
        if self.format == "CSV":
            out.append("header row: " + ("yes" if self.header else
                                         "no (the first row is data: columns are the job's "
                                         "fields in order)"))
            if self.quoting:
                out.append(f"quoting: {QUOTING[self.quoting]}")
            if self.counts["null"]:
                out.append(f"NULL written as \\N ({self.counts['null']} values)")
        else:
            style = self.int64_style
            described = {"numbers": "JSON numbers", "strings": "JSON strings (as ClickHouse "
                         "writes them)", "both": "both JSON numbers and strings", None: "none "
                         "in the sample"}[style]
            out.append(f"64-bit integers: {described}")
        for name, seen in sorted(self.time_arrays.items()):
            out.append(f"timestamp array {clean(name, 80)}: {_precision(seen)}")
        for name, top in sorted(self.wide.items()):
            out.append(f"{clean(name, 80)}: values up to {top}, wider than the catalog's "
                       "guessed type (loaded exactly all the same)")
        if self.missing:
            missing = ", ".join(clean(n, 80) for n in self.missing)
            out.append(f"job fields not in the file: {missing}")
        if self.extra:
            out.append(f"file columns the job does not list (loaded as text): "
                       f"{', '.join(clean(n, 80) for n in self.extra)}")
        out.extend(self.problems)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records, "header": self.header, "quoting": self.quoting,
            "quotingCounts": dict(self.counts), "int64": self.int64_style,
            "int64Counts": {k: dict(v) for k, v in self.int64.items()},
            "timestampArrays": {k: _precision(v) for k, v in self.time_arrays.items()},
            "wideIntegers": dict(self.wide), "missingColumns": self.missing,
            "extraColumns": self.extra, "columnCounts": {str(k): v for k, v in
                                                         self.widths.items()},
            "problems": self.problems,
        }


def _precision(seen: Counter[str]) -> str:
    if seen["second"] and seen["minute"]:
        return f"both (to the second {seen['second']}, to the minute {seen['minute']})"
    if seen["minute"]:
        return "to the minute"
    return "to the second" if seen["second"] else "no value in the sample"


def _specs(job: Job) -> dict[str, FieldSpec | None]:
    """File column name -> its field's schema entry (None: a variable, or unknown: text)."""
    schema = load_schema(job.scope)
    return {f.column_name: (schema.field(f.field_name) if f.field_name in schema else None)
            for f in job.fields}


def _note_times(facts: FileFacts, name: str, values: list[str]) -> None:
    seen = facts.time_arrays.setdefault(name, Counter())
    for value in values:
        for match in _TIMESTAMP.finditer(value):
            seen["second" if match.group(1) else "minute"] += 1


def _note_width(facts: FileFacts, name: str, spec: FieldSpec, value: int) -> None:
    bounds = _INT_RANGES.get(spec.element_type)
    if bounds and not bounds[0] <= value <= bounds[1]:
        facts.wide[name] = max(facts.wide.get(name, value), value, key=abs)


def describe_csv(text: str, job: Job) -> FileFacts:
    """`text`: complete records only (csload.doctor.textscan.csv_cut)."""
    facts = FileFacts("CSV")
    specs = _specs(job)
    names = tuple(specs)
    records: list[Record] = []
    try:
        for record in csv_records(text):
            records.append(record)
            if len(records) > MAX_RECORDS:
                break
    except NotCsv as exc:
        facts.problems.append(f"the CSV cannot be read past {exc}")
    if not records:
        return facts
    facts.first_row = records[0].values
    facts.header = is_header(facts.first_row, names)
    columns = list(facts.first_row) if facts.header else list(names)
    if facts.header:
        facts.missing = [n for n in names if n not in columns]
        facts.extra = [n for n in columns if n not in specs]
    data = records[1:] if facts.header else records
    facts.records = len(data)
    facts.expected_width = len(columns)
    for record in data:
        facts.widths[len(record.cells)] += 1
        for name, cell in zip(columns, record.cells, strict=False):
            _note_cell(facts, name, specs.get(name), cell.value, cell.quoted, cell.is_null)
    bad = {w: n for w, n in facts.widths.items() if w != facts.expected_width}
    if bad:
        facts.problems.append(
            f"{sum(bad.values())} record(s) have {', '.join(map(str, sorted(bad)))} columns "
            f"where the {'header has' if facts.header else 'job has'} {facts.expected_width}")
    facts.quoting = _quoting(facts.counts)
    return facts


def _note_cell(facts: FileFacts, name: str, spec: FieldSpec | None, value: str, quoted: bool,
               null: bool) -> None:
    counts = facts.counts
    if null:
        counts["null"] += 1
        return
    number = spec is not None and not spec.is_array and spec.element_type.startswith(
        _NUMBER_TYPES)
    if number:
        counts["number"] += 1
        counts["number_quoted"] += quoted
        assert spec is not None
        if value.lstrip("-").isdigit():
            _note_width(facts, name, spec, int(value))
        return
    counts["text"] += 1
    needs = value == "" or value == "\\N" or any(c in value for c in ',"\r\n')
    if quoted:
        counts["text_quoted"] += 1
        counts["text_quoted_needless"] += not needs
    if spec is not None and spec.is_array and spec.element_type == "DateTime":
        _note_times(facts, name, [value])


def _quoting(counts: Counter[str]) -> str:
    if not counts["text"]:
        return "unknown"
    if counts["text_quoted"] == counts["text"] and counts["text_quoted_needless"]:
        if counts["number"] and counts["number_quoted"] == counts["number"]:
            return "all"
        return "clickhouse"
    return "minimal" if not counts["text_quoted_needless"] else "mixed"


def describe_jsonl(text: str, job: Job) -> FileFacts:
    """`text`: complete lines only."""
    facts = FileFacts("JSONL")
    specs = _specs(job)
    keys: dict[str, None] = {}
    for number, line in jsonl_lines(text):
        if facts.records >= MAX_RECORDS:
            break
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            facts.problems.append(f"line {number} is not JSON: {clean(exc, 120)}")
            break
        if not isinstance(row, dict):
            facts.problems.append(f"line {number} is not a JSON object")
            break
        facts.records += 1
        keys.update(dict.fromkeys(row))
        for name, value in row.items():
            spec = specs.get(name)
            if spec is not None:
                _note_json(facts, name, spec, value)
    if facts.records:
        facts.missing = [n for n in specs if n not in keys]
        facts.extra = [k for k in keys if k not in specs]
    return facts


def _note_json(facts: FileFacts, name: str, spec: FieldSpec, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    element = spec.element_type
    if element in ("UInt64", "Int64"):
        seen = facts.int64.setdefault(name, Counter())
        for item in values:
            if isinstance(item, bool) or item is None:
                continue
            seen["number" if isinstance(item, int) else "string"] += 1
    elif element == "DateTime" and spec.is_array:
        _note_times(facts, name, [v for v in values if isinstance(v, str)])
    if element in _INT_RANGES:
        for item in values:
            if isinstance(item, int) and not isinstance(item, bool):
                _note_width(facts, name, spec, item)
            elif isinstance(item, str) and item.lstrip("-").isdigit():
                _note_width(facts, name, spec, int(item))
