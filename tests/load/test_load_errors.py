"""A part that does not parse fails its run alone, with job, run, part and the exact line."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from csload.errors import DamagedDownload, PartParseError
from csload.load.duckdb import DuckDBStore
from csload.transfer.staged import StagedPart, StagedRun
from tests.support.partgen import Writer, job, run

DAY = date(2026, 11, 20)
FIELDS = ["session_id", "view_number", "view_time", "url", "errors.message",
          "errors.line_number"]
HEADER = "session_id,view_number,view_time,url,errors.message,errors.line_number\n"
GOOD = "1,1,2026-11-20 10:00:00,u,[],[]\n"
# a record spanning four physical lines (3 to 6): the reported line must be the physical one
MULTILINE = '2,1,2026-11-20 10:00:00,"a\nb\nc","[\'x\ny\']",[1]\n'


def bad_csv_run(writer: Writer, run_id: int, body: str, *, compress: bool = True) -> StagedRun:
    the_job = job(1, fields=FIELDS)
    good = writer.staged(the_job, run(run_id, 1, DAY), [[{"session_id": run_id, "view_number": 1}]])
    path = writer.folder / f"bad-{run_id}.csv"
    data = body.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return StagedRun(the_job, good.run, (*good.parts, StagedPart(2, path, len(data))))


def one_part_run(writer: Writer, fields: Sequence[Any], body: bytes) -> StagedRun:
    """Run 11 of a CSV job of `fields` (names, or (name, alias) pairs), whose one part is
    `body`, gzipped."""
    path = writer.folder / "one-part.csv.gz"
    path.write_bytes(gzip.compress(body))
    return StagedRun(job(1, fields=fields), run(11, 1, DAY), (StagedPart(1, path, len(body)),))


CSV_CASES = {
    "too many columns": (HEADER + GOOD + MULTILINE + "3,1,2026-11-20 10:00:00,u,[],[],extra\n", 7),
    "too few columns": (HEADER + GOOD + "3,1\n", 3),
    "broken quoting": (HEADER + GOOD + MULTILINE + '3,1,2026-11-20 10:00:00,"unterminated,[],[]\n',
                       7),
    "text in an integer column": (HEADER + GOOD + MULTILINE + "abc,1,2026-11-20 10:00:00,u,[],[]\n",
                                  7),
    "bad timestamp": (HEADER + GOOD + "3,1,2026-13-45 10:00:00,u,[],[]\n", 3),
    "bad integer array": (HEADER + GOOD + MULTILINE + "3,1,2026-11-20 10:00:00,u,[],[x]\n", 7),
    "malformed string array": (HEADER + GOOD + MULTILINE
                               + "3,1,2026-11-20 10:00:00,u,\"['a\\\\',\",[]\n", 7),
}


# The same cases in parts without a header row (ClickHouse's plain CSV, contract section 9):
# every line moves up by one. "too few columns" in the first row is another case (below).
CSV_CASES.update({
    f"{name}, no header": (body.removeprefix(HEADER), line - 1)
    for name, (body, line) in list(CSV_CASES.items())
})


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_csv_parse_errors_name_the_line(store: DuckDBStore, writer: Writer, case: str) -> None:
    body, line = CSV_CASES[case]
    the_job = job(1, fields=FIELDS)
    good = writer.staged(the_job, run(10, 1, DAY), [[{"session_id": 10, "view_number": 1}]])
    bad = bad_csv_run(writer, 11, body)
    outcomes = store.apply([good, bad])
    assert [o.status for o in outcomes] == ["loaded", "failed"]
    error = outcomes[1].error
    assert isinstance(error, PartParseError)
    assert (error.job_id, error.run_id, error.part_id, error.line) == (1, 11, 2, line), str(error)
    assert f"job 1, run 11, part 2: line {line}:" in str(error)
    # nothing of the bad run is loaded (its good part neither); the good run is
    assert store.con.execute("SELECT DISTINCT _run_id FROM views").fetchall() == [(10,)]
    [failed] = store.ledger.failed_runs()
    assert failed.run_id == 11 and failed.message and "line" in failed.message
    assert store.loaded_runs() == {10}


def test_uncompressed_bad_part(store: DuckDBStore, writer: Writer) -> None:
    bad = bad_csv_run(writer, 11, HEADER + "x,1,2026-11-20 10:00:00,u,[],[]\n", compress=False)
    [outcome] = store.apply([bad])
    assert isinstance(outcome.error, PartParseError) and outcome.error.line == 2


JSON_CASES = {
    "invalid JSON line": ('{"view_number": 1, "session_id": 1}\n{"session_id": 2\n'
                          '{"session_id": 3}\n', 2),
    "text in an integer": ('{"view_number": 1, "session_id": 1}\n\n{"session_id": "abc"}\n', 3),
    "bad timestamp": ('{"view_number": 1, "session_id": 1}\n'
                      '{"view_number": 1, "session_id": 2, "view_time": "2026-13-01 00:00:00"}\n',
                      2),
    "not an object": ('{"view_number": 1, "session_id": 1}\n[1, 2]\n', 2),
    "uint64 overflow": ('{"view_number": 1, "session_id": 18446744073709551615}\n'
                        '{"view_number": 1, "session_id": 18446744073709551616}\n', 2),
}


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_jsonl_parse_errors_name_the_line(store: DuckDBStore, writer: Writer, case: str) -> None:
    body, line = JSON_CASES[case]
    the_job = job(1, fmt="JSONL", fields=FIELDS)
    good = writer.staged(the_job, run(10, 1, DAY), [[{"session_id": 10, "view_number": 1,
                                                      "view_time": datetime(2026, 11, 20)}]])
    path = writer.folder / "bad.jsonl.gz"
    path.write_bytes(gzip.compress(body.encode()))
    bad = StagedRun(the_job, run(11, 1, DAY), (StagedPart(1, path, 10),))
    outcomes = store.apply([bad, good])
    assert [o.status for o in outcomes] == ["failed", "loaded"]
    error = outcomes[0].error
    assert isinstance(error, PartParseError)
    assert (error.run_id, error.part_id, error.line) == (11, 1, line), str(error)


def test_jsonl_error_far_into_a_big_part(store: DuckDBStore, writer: Writer) -> None:
    lines = [b'{"session_id": %d, "view_number": 1}\n' % i for i in range(45_000)]
    lines[43_210] = b'{"session_id": -5, "view_number": 1}\n'
    path = writer.folder / "big.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))
    bad = StagedRun(job(1, fmt="JSONL", fields=FIELDS), run(11, 1, DAY),
                    (StagedPart(1, path, 10),))
    [outcome] = store.apply([bad])
    assert isinstance(outcome.error, PartParseError) and outcome.error.line == 43_211


def test_a_part_without_header_loads_its_rows_in_the_jobs_field_order(
        store: DuckDBStore, writer: Writer) -> None:
    body = GOOD + '2,7,2026-11-20 11:00:00,"v,w","[\'x\']",[3]\n'
    [outcome] = store.apply([bad_csv_run(writer, 11, body)])
    assert outcome.status == "loaded", outcome.error
    got = store.con.execute("SELECT session_id, view_number, view_time, url, errors_message, "
                            "errors_line_number FROM views WHERE session_id < 10 "
                            "ORDER BY session_id").fetchall()
    assert got == [(1, 1, datetime(2026, 11, 20, 10), "u", [], []),
                   (2, 7, datetime(2026, 11, 20, 11), "v,w", ["x"], [3])]


@pytest.mark.parametrize("first", ["3,1\n", "<html><body>502 Bad Gateway</body></html>\n",
                                   '{"session_id": 1, "view_number": 1}\n'])
def test_a_first_row_that_is_neither_header_nor_data_fails_at_line_1(
        store: DuckDBStore, writer: Writer, first: str) -> None:
    [outcome] = store.apply([bad_csv_run(writer, 11, first + GOOD)])
    assert isinstance(outcome.error, PartParseError) and outcome.error.line == 1
    assert "not a header naming the job's fields" in str(outcome.error)


def test_a_gzip_stream_cut_in_its_header_is_a_damaged_download(
        store: DuckDBStore, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.gz"
    path.write_bytes(gzip.compress((HEADER + GOOD).encode())[:15])
    the_job = job(1, fields=FIELDS)
    [outcome] = store.apply([StagedRun(the_job, run(11, 1, DAY), (StagedPart(1, path, 15),))])
    assert outcome.status == "damaged" and isinstance(outcome.error, DamagedDownload)
    assert outcome.error.part_ids == (1,)
    assert "job 1, run 11, part 1: the gzip stream ends early" in str(outcome.error)
    # Not recorded at all: the caller downloads the part again and applies the run again.
    assert store.loaded_runs() == set() and store.ledger.status_of(11) is None


def damaged_run(writer: Writer, run_id: int, damage: Callable[[bytes], bytes],
                damaged_parts: Sequence[int]) -> StagedRun:
    """A CSV run of three parts, `damage` applied to the gzip bytes of `damaged_parts`."""
    the_job = job(1, fields=FIELDS)
    rows = [[{"session_id": run_id * 1000 + p * 100 + i, "view_number": 1} for i in range(50)]
            for p in range(3)]
    staged = writer.staged(the_job, run(run_id, 1, DAY), rows)
    for part in staged.parts:
        if part.part_id in damaged_parts:
            part.path.write_bytes(damage(part.path.read_bytes()))
    return staged


def flip_middle_byte(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    # DuckDB's reader: "IO Error: Unexpected end of GZIP stream: <file>"
    "last bytes cut": lambda body: body[:-3],
    "half cut": lambda body: body[: len(body) // 2],
    # DuckDB's reader inflates garbage without complaint and fails to parse it, or not
    "a byte flipped": flip_middle_byte,
    "garbage after the stream": lambda body: body + b"garbage!",
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_gzip_parts_are_found_at_load_and_nothing_of_their_run_is_loaded(
        store: DuckDBStore, writer: Writer, case: str) -> None:
    good = damaged_run(writer, 10, DAMAGE[case], ())
    bad = damaged_run(writer, 11, DAMAGE[case], (2, 3))
    outcomes = store.apply([good, bad])
    assert [o.status for o in outcomes] == ["loaded", "damaged"], [str(o.error) for o in outcomes]
    error = outcomes[1].error
    assert isinstance(error, DamagedDownload) and error.part_ids in ((2, 3), (3, 2))
    other = 5 - error.part_id
    assert str(error).startswith(f"job 1, run {11}, part {error.part_id}: "), str(error)
    assert "gzip stream" in str(error) and str(error).endswith(f"(also part {other})")
    assert store.con.execute("SELECT DISTINCT _run_id FROM views").fetchall() == [(10,)]
    assert store.ledger.status_of(11) is None


def test_a_parse_error_in_a_whole_gzip_part_is_not_a_damaged_download(
        store: DuckDBStore, writer: Writer) -> None:
    bad = bad_csv_run(writer, 11, HEADER + GOOD + "3,1\n")
    [outcome] = store.apply([bad])
    assert outcome.status == "failed" and isinstance(outcome.error, PartParseError)
    assert not isinstance(outcome.error, DamagedDownload)
    assert store.ledger.status_of(11) == "failed"


def test_a_first_row_of_data_naming_half_the_jobs_columns_is_data(
        store: DuckDBStore, writer: Writer) -> None:
    # A headerless part of a small job whose first `url` is the text "url": the row names one
    # of its two columns, but its time is no column name. Taken for a header, the row was lost
    # and the time column loaded NULL in every row, exit 0.
    [outcome] = store.apply([one_part_run(
        writer, ["view_time", "url"], b'"2026-11-20 10:00:00","url"\n"2026-11-20 11:00:00","b"\n')])
    assert outcome.status == "loaded" and outcome.rows == 2, outcome.error
    assert store.con.execute("SELECT view_time, url FROM views ORDER BY view_time").fetchall() == [
        (datetime(2026, 11, 20, 10), "url"), (datetime(2026, 11, 20, 11), "b")]


@pytest.mark.parametrize("header", [True, False])
def test_a_part_with_carriage_returns_alone_for_line_ends_loads_every_row(
        store: DuckDBStore, writer: Writer, header: bool) -> None:
    # Read as "\n" lines, such a part was one line: its header, 0 rows, and the run "loaded".
    body = (HEADER if header else "") + GOOD + MULTILINE + '3,2,2026-11-20 12:00:00,"x\ry",[],[]\n'
    [outcome] = store.apply([bad_csv_run(writer, 11, body.replace("\n", "\r"))])
    assert outcome.status == "loaded" and outcome.rows == 4, outcome.error
    got = store.con.execute("SELECT session_id, url FROM views WHERE session_id < 10 "
                            "ORDER BY session_id").fetchall()
    assert got == [(1, "u"), (2, "a\rb\rc"), (3, "x\ry")]


def test_a_csv_row_that_is_not_utf8_fails_its_run_at_its_line(
        store: DuckDBStore, writer: Writer, tmp_path: Path) -> None:
    # The line was looked for by reading the part as UTF-8: a UnicodeDecodeError ended the
    # whole sync, as "a bug in csload", on every sync.
    body = (HEADER + GOOD).encode() + b'3,1,2026-11-20 10:00:00,"caf\xe9",[],[]\n'
    path = tmp_path / "latin1.csv.gz"
    path.write_bytes(gzip.compress(body))
    good = bad_csv_run(writer, 11, HEADER + GOOD)
    staged = StagedRun(good.job, good.run, (good.parts[0], StagedPart(2, path, len(body))))
    [outcome] = store.apply([staged])
    assert isinstance(outcome.error, PartParseError), outcome
    assert (outcome.error.part_id, outcome.error.line) == (2, 3)
    assert "utf-8" in str(outcome.error)


def test_bytes_after_a_gzip_stream_fail_their_run_alone_in_a_batch(
        store: DuckDBStore, writer: Writer, tmp_path: Path) -> None:
    # DuckDB's "Input is not a GZIP stream" names no file: the whole table's batch failed,
    # naming no job, run or part, on every sync. (Parts larger than the first record's read,
    # which finds the bad bytes of a small part.)
    the_job = job(1, fields=FIELDS)
    runs = [writer.staged(the_job, run(run_id, 1, date(2026, 11, run_id)), [
        [{"session_id": run_id, "view_number": n} for n in range(3000)]] * 2)
        for run_id in (11, 12, 13)]
    spoiled = runs[1].parts[1].path
    spoiled.write_bytes(spoiled.read_bytes() + b"GARBAGE-TRAILING-BYTES")
    outcomes = {o.run_id: o for o in store.apply(runs)}
    assert outcomes[12].status == "damaged" and isinstance(outcomes[12].error, DamagedDownload)
    assert "part 2" in str(outcomes[12].error)
    assert "not gzip" in str(outcomes[12].error)
    assert {outcomes[r].status for r in (11, 13)} == {"loaded"}
    assert store.con.execute("SELECT DISTINCT session_id FROM views ORDER BY 1").fetchall() == [
        (11,), (13,)]


def test_a_header_lacking_a_column_of_the_job_fails_its_run_at_line_1(
        store: DuckDBStore, writer: Writer) -> None:
    # Read by its header, the part loaded `url` NULL in every row, exit 0.
    body = HEADER.replace(",url,", ",page,") + GOOD
    [outcome] = store.apply([bad_csv_run(writer, 11, body)])
    assert isinstance(outcome.error, PartParseError) and outcome.error.line == 1
    assert "the header lacks 1 of the job's columns ('url')" in str(outcome.error)


@pytest.mark.parametrize(("fmt", "body", "line"), [
    ("CSV", HEADER + GOOD + "\\N,2,2026-11-20 10:00:00,u,[],[]\n", 3),
    ("CSV", HEADER + GOOD + "4,\\N,2026-11-20 10:00:00,u,[],[]\n", 3),
    ("JSONL", '{"session_id": 1, "view_number": 1}\n{"session_id": null, "view_number": 2}\n', 2),
    ("JSONL", '{"session_id": 1, "view_number": 1}\n{}\n', 2),
], ids=["csv-session", "csv-view", "jsonl-null", "jsonl-empty-object"])
def test_a_row_without_its_key_fails_its_run_at_its_line(
        store: DuckDBStore, writer: Writer, fmt: str, body: str, line: int) -> None:
    # A NULL key loaded, and no re-run of its day could ever replace the row.
    if fmt == "CSV":
        staged = bad_csv_run(writer, 11, body)
        part = 2
    else:
        path = writer.folder / "nokey.jsonl.gz"
        path.write_bytes(gzip.compress(body.encode()))
        staged = StagedRun(job(1, fmt="JSONL", fields=FIELDS), run(11, 1, DAY),
                           (StagedPart(1, path, 10),))
        part = 1
    [outcome] = store.apply([staged])
    assert isinstance(outcome.error, PartParseError), outcome
    assert (outcome.error.part_id, outcome.error.line) == (part, line), str(outcome.error)
    assert "no id (NULL)" in str(outcome.error)


def test_a_header_naming_a_column_that_looks_like_a_number_is_a_header(
        store: DuckDBStore, writer: Writer) -> None:
    # An alias "2024" is a name of the job's: its header is no data row.
    [outcome] = store.apply([one_part_run(writer, [("session_id", "2024"), "view_number"],
                                          b'"2024","view_number"\n5,1\n6,2\n')])
    assert outcome.status == "loaded" and outcome.rows == 2, outcome.error


def test_a_headerless_row_with_a_number_equal_to_a_numeric_alias_is_data(
        store: DuckDBStore, writer: Writer) -> None:
    # A job of `view_number:1` and `url`: its first data row `1,"/blog"` named one of its two
    # columns ("1"), and was taken for a header lacking `url` (the run failed on every sync).
    [outcome] = store.apply([one_part_run(writer, [("view_number", "1"), "url"],
                                          b'1,"/blog/10-tips"\n2,""\n')])
    assert outcome.status == "loaded" and outcome.rows == 2, outcome.error
