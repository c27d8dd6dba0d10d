"""Bad input, end to end through a real sync: storage serves one part of one run with a given
body (`Faults.part_bodies`), built from the part the export engine wrote.

A part that does not parse fails its run with a message naming job, run, part and line; none
of that run's rows is loaded (its good parts neither), the job's other runs are, and the next
sync (the part served whole again) loads the run. A body that is not gzip is accepted (the
contract: detect gzip by its magic bytes) when its content is good. An unknown field (a CSV
header column or a JSONL key the job does not list) loads as text with a warning. An empty part
and a CSV part with only its header load as no rows: that is how an export with no rows looks
(the simulator writes them for a window without data), so they cannot be refused; next to
parts with rows an empty part is logged as suspicious.

Every case runs into both targets (`target_kind`): a DuckDB file and a local lake, where
the failed run must also be in no partition of the current version and the lake must be tidy
afterwards. Into the lake by default: LAKE_DEFAULT_CASES (a malformed CSV row, a type error in a
CSV and in a JSONL field, an invalid JSON line, a body that is not gzip); every case with --slow.
A lake's summary entries carry target="parquet".
"""

from __future__ import annotations

import gzip
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import csload
from csload.config import Settings
from csload.simulator import Simulator
from csload.simulator.formats import csv_lines, csv_quote, jsonl_lines
from csload.simulator.rows import columns_of
from tests.support.exportfmt import decode_part
from tests.support.lakekit import snapshot_of
from tests.support.relkit import Secrets, csv_field, csv_records, is_slow, log_texts
from tests.support.syncref import SESSIONS_JOB, VIEWS_JOB, column_name, expected_tables, run_of
from tests.support.targets import TARGETS, SyncTarget

PART = 2
DAY = "2026-11-23"
BAD_TIME = "2026-13-45 25:61:00"


@dataclass(frozen=True)
class Case:
    name: str
    fmt: str                     # the job's format: "CSV" (views job) or "JSONL" (sessions job)
    build: Callable[[Simulator, int, bytes], tuple[bytes, int | None]]
    # "error": the run fails and the message names this line (None: a download error, no
    # line); "loads": the run loads, as the truth says ("exact"), without the part's rows
    # ("no rows"), or with one more text column ("extra column").
    expect: str
    says: str = ""


def job_of(fmt: str) -> int:
    return VIEWS_JOB if fmt == "CSV" else SESSIONS_JOB


# --- building bodies from the part the simulator wrote --------------------------------------

def csv_mutation(change: Callable[[list[str], list[str]], str]
                 ) -> Callable[[Simulator, int, bytes], tuple[bytes, int | None]]:
    """Replace one single-line record after the first multi-line one (so record number and
    line number differ) with `change(header, fields)`; the line is that record's."""
    def build(sim: Simulator, run: int, body: bytes) -> tuple[bytes, int | None]:
        text = gzip.decompress(body).decode()
        records = csv_records(text)
        header = records[0][2]
        after_multi = next(i for i, (first, last, _) in enumerate(records) if last > first)
        index = next(i for i in range(after_multi + 1, len(records))
                     if records[i][0] == records[i][1])
        first, _, fields = records[index]
        lines = text.split("\n")
        lines[first - 1] = change(header, list(fields))
        return gzip.compress("\n".join(lines).encode()), first
    return build


def set_csv(name: str, value: str) -> Callable[[list[str], list[str]], str]:
    def change(header: list[str], fields: list[str]) -> str:
        fields[header.index(name)] = value
        return ",".join(csv_field(f) for f in fields)
    return change


def json_mutation(change: Callable[[dict[str, Any]], str], line: int = 3
                  ) -> Callable[[Simulator, int, bytes], tuple[bytes, int | None]]:
    def build(sim: Simulator, run: int, body: bytes) -> tuple[bytes, int | None]:
        lines = gzip.decompress(body).split(b"\n")
        lines[line - 1] = change(json.loads(lines[line - 1])).encode()
        return gzip.compress(b"\n".join(lines)), line
    return build


def set_json(name: str, value: Any) -> Callable[[dict[str, Any]], str]:
    def change(row: dict[str, Any]) -> str:
        row[name] = value
        return json.dumps(row)
    return change


def fixed(body: bytes, line: int | None = None
          ) -> Callable[[Simulator, int, bytes], tuple[bytes, int | None]]:
    return lambda sim, run, original: (body, line)


def plain(sim: Simulator, run: int, body: bytes) -> tuple[bytes, int | None]:
    return gzip.decompress(body), None


def header_only(sim: Simulator, run: int, body: bytes) -> tuple[bytes, int | None]:
    return gzip.compress(gzip.decompress(body).split(b"\n", 1)[0] + b"\n"), None


def other_format(sim: Simulator, run: int, body: bytes) -> tuple[bytes, int | None]:
    """The part's own rows, written in the format the job does not declare."""
    job = sim.state.job(sim.run(run).job_id)
    assert job is not None
    rows = decode_part(body, job.format, sim.column_types(job.job_id))
    columns = columns_of(job)
    if job.format == "CSV":
        return gzip.compress(b"".join(jsonl_lines(rows, columns))), 1
    head, lines = csv_lines(rows, columns)
    return gzip.compress(head + b"".join(lines)), 1


def extra_column(sim: Simulator, run: int, body: bytes) -> tuple[bytes, int | None]:
    """Every row of the part gets one more field, `brand_new_field` = "v<row index>"."""
    text = gzip.decompress(body).decode()
    if text.lstrip().startswith("{"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        out = "".join(json.dumps({**row, "brand_new_field": f"v{i}"}) + "\n"
                      for i, row in enumerate(rows))
        return gzip.compress(out.encode()), None
    records = [fields for _, _, fields in csv_records(text)]
    out = ",".join([*(csv_quote(h) for h in records[0]), "brand_new_field"]) + "\n"
    out += "".join(",".join([*(csv_field(f) for f in fields), f"v{i}"]) + "\n"
                   for i, fields in enumerate(records[1:]))
    return gzip.compress(out.encode()), None


def garbage(sim: Simulator, run: int, body: bytes) -> tuple[bytes, int | None]:
    noise = random.Random(run).randbytes(2000)
    return (b"\x00\xff" + noise), 1


CASES = [
    # CSV (the views job)
    Case("csv: too many columns", "CSV", csv_mutation(
        lambda h, f: ",".join([*(csv_field(x) for x in f), "extra"])), "error"),
    Case("csv: too few columns", "CSV", csv_mutation(
        lambda h, f: ",".join(csv_field(x) for x in f[:-1])), "error"),
    Case("csv: broken quoting", "CSV", csv_mutation(
        lambda h, f: ",".join(['"' + f[0] + '"x', *(csv_field(x) for x in f[1:])])), "error",
        "unterminated quote"),
    # The quote swallows the rest of the part: the message must still not show the rows.
    Case("csv: unterminated quote", "CSV", csv_mutation(
        lambda h, f: ",".join(['"' + f[0], *(csv_field(x) for x in f[1:])])), "error",
        "unterminated quote"),
    Case("csv: text in an integer field", "CSV", csv_mutation(set_csv("view_number", "abc")),
         "error"),
    Case("csv: negative UInt", "CSV", csv_mutation(set_csv("session_id", "-5")), "error"),
    Case("csv: bad timestamp", "CSV", csv_mutation(set_csv("view_time", BAD_TIME)), "error"),
    Case("csv: integer out of range", "CSV", csv_mutation(
        set_csv("session_id", str(1 << 64))), "error"),
    Case("csv: malformed array", "CSV", csv_mutation(
        set_csv("errors.line_number", "[1,two]")), "error"),
    Case("csv: unknown field", "CSV", extra_column, "extra column", "brand_new_field"),
    Case("csv: empty part", "CSV", fixed(b""), "no rows", "the part is empty"),
    Case("csv: empty gzip part", "CSV", fixed(gzip.compress(b"")), "no rows",
         "the part is empty"),
    Case("csv: header only", "CSV", header_only, "no rows"),
    Case("csv: not gzip, good content", "CSV", plain, "exact"),
    Case("csv: not gzip, garbage", "CSV", garbage, "error"),
    Case("csv: an HTML page", "CSV", fixed(
        b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", 1), "error", "not a header"),
    Case("csv: JSONL body", "CSV", other_format, "error", "not a header"),
    Case("csv: corrupt gzip", "CSV", fixed(b"\x1f\x8b\x08\x00" + b"\x00" * 40), "error",
         "gzip"),
    # JSONL (the sessions job)
    Case("jsonl: invalid JSON line", "JSONL", json_mutation(
        lambda row: json.dumps(row)[:-9]), "error"),
    Case("jsonl: not an object", "JSONL", json_mutation(lambda row: "[1, 2, 3]"), "error"),
    Case("jsonl: text in an integer field", "JSONL", json_mutation(
        set_json("session_number", "abc")), "error"),
    Case("jsonl: negative UInt", "JSONL", json_mutation(set_json("session_id", -5)), "error"),
    Case("jsonl: bad timestamp", "JSONL", json_mutation(set_json("session_start", BAD_TIME)),
         "error"),
    Case("jsonl: integer out of range", "JSONL", json_mutation(
        set_json("session_id", 1 << 64)), "error"),
    Case("jsonl: unknown field", "JSONL", extra_column, "extra column", "brand_new_field"),
    Case("jsonl: empty part", "JSONL", fixed(b""), "no rows", "the part is empty"),
    Case("jsonl: blank lines only", "JSONL", fixed(gzip.compress(b"\n\n")), "no rows"),
    Case("jsonl: not gzip, good content", "JSONL", plain, "exact"),
    Case("jsonl: not gzip, garbage", "JSONL", garbage, "error"),
    Case("jsonl: CSV body", "JSONL", other_format, "error"),
]


def part_keys(sim: Simulator, job: int, run: int) -> list[tuple[Any, ...]]:
    """The row keys of part PART, in file order."""
    body = sim.part_bodies(job, run, compressed=True)[PART - 1]
    scope = sim.job(job).scope
    names = ("session_id", "view_number") if scope == "views" else ("session_id",)
    return [tuple(row[n] for n in names)
            for row in decode_part(body, sim.job(job).format, sim.column_types(job))]


def key_of(row: dict[str, Any], scope: str) -> tuple[Any, ...]:
    return (row["session_id"], row["view_number"]) if scope == "views" else (row["session_id"],)


def expected_with(sim: Simulator, job: int, runs: list[int], bad: int, expect: str
                  ) -> dict[str, tuple[set[str], list[dict[str, Any]]]]:
    expected = expected_tables(sim, runs)
    if expect == "exact":
        return expected
    scope = sim.job(job).scope
    keys = part_keys(sim, job, bad)
    columns, rows = expected[scope]
    if expect == "no rows":
        gone = set(keys)
        rows = [r for r in rows if not (r["_run_id"] == bad and key_of(r, scope) in gone)]
        return {**expected, scope: (columns, rows)}
    assert expect == "extra column"
    value = {key: f"v{i}" for i, key in enumerate(keys)}
    extra = column_name("brand_new_field")
    rows = [{**r, extra: value.get(key_of(r, scope)) if r["_run_id"] == bad else None}
            for r in rows]
    return {**expected, scope: (columns | {extra}, rows)}


def plant(simulator: Simulator, case: Case) -> tuple[int, int, list[int], list[int], int | None]:
    """Serve `case`'s body as part PART of the job's run of DAY: (job, that run, all the job's
    successful runs, the others, the line the error should name)."""
    job = job_of(case.fmt)
    bad = run_of(simulator, job, DAY)
    runs = [r.run_id for r in simulator.runs(job) if simulator.run_state(r.run_id) == "SUCCESS"]
    others = [r for r in runs if r != bad]
    original = simulator.part_bodies(job, bad, compressed=True)[PART - 1]
    body, line = case.build(simulator, bad, original)
    simulator.faults.part_bodies[(bad, PART)] = body
    return job, bad, runs, others, line


LAKE_DEFAULT_CASES = ("csv: too many columns", "csv: text in an integer field",
                      "jsonl: invalid JSON line", "jsonl: text in an integer field",
                      "csv: not gzip, garbage")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        by_name = {c.name: c for c in CASES}
        lake = CASES if is_slow(metafunc.config) else [by_name[n] for n in LAKE_DEFAULT_CASES]
        chosen = {"duckdb": CASES, "parquet": lake}
        metafunc.parametrize(("target_kind", "case"), [
            pytest.param(kind, case, id=f"{kind}-{case.name}")
            for kind in TARGETS for case in chosen[kind]])


def test_bad_input(case: Case, target: SyncTarget, simulator: Simulator, settings: Settings,
                   secrets: Secrets, caplog: pytest.LogCaptureFixture,
                   record: Callable[..., None]) -> None:
    caplog.set_level(logging.DEBUG)
    job, bad, runs, others, line = plant(simulator, case)

    report = csload.sync(settings, **target.sync_to, jobs=[job])

    message = next((r.message or "" for r in report.failed if r.run_id == bad), "")
    if case.expect == "error":
        acc = target.compare(simulator, others)
    else:
        acc = target.compare(simulator, runs,
                             expected_with(simulator, job, runs, bad, case.expect))
    record("bad input", case.name, **target.summary, format=case.fmt, expect=case.expect,
           line=line, message=message or None, **acc.fields())
    if case.expect == "error":
        assert report.exit_code == 3
        assert [r.run_id for r in report.failed] == [bad], [r.message for r in report.runs]
        assert sorted(r.run_id for r in report.loaded) == sorted(others)
        where = f"job {job}, run {bad}, part {PART}"
        assert where in message, message
        if line is not None:
            assert f"{where}: line {line}: " in message, message
        assert case.says in message, message
        # No row data in the message: not even the first field of the first record.
        assert len(message) < 400, message
        acc.assert_exact()          # the other runs, and nothing of the bad one
        if target.is_lake:
            in_lake = {run for entry in snapshot_of(target.path).state.tables.values()
                       for runs in entry.partitions.values() for run in runs}
            assert bad not in in_lake and set(others) <= in_lake
        status = target.run_message(bad)
        assert status is not None and status[0] == "failed" and where in status[1], status
    else:
        assert report.exit_code == 0, message
        acc.assert_exact()
        if case.says:
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any(case.says in w for w in warnings), warnings
            if case.expect == "no rows":
                assert any(f"job {job}, run {bad}, part {PART}" in w for w in warnings)
    target.assert_tidy()
    secrets.scan(log_texts(caplog), "a log line")
    secrets.scan([json.dumps(report.to_json())], "the report")

    if case.expect != "error":
        return
    simulator.faults.part_bodies.clear()
    again = csload.sync(settings, **target.sync_to, jobs=[job])
    assert [r.run_id for r in again.loaded] == [bad] and again.exit_code == 0
    target.compare(simulator, runs).assert_exact()
    target.assert_tidy()
