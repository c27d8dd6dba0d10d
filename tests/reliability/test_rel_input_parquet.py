"""Bad input into a local Parquet lake, end to end through a real sync: test_rel_input.py's
cases (imported, not copied), storage serving one part of one run with the given body.

A part that does not parse fails its run with a message naming job, run, part and line; the
lake holds none of that run's rows (no partition of the current version lists the run), the
job's other runs are in it, each whole, the run is `failed` in the lake's ledger, and the next
sync (the part served whole again) loads it. The other cases load as test_rel_input.py says.

By default: a malformed CSV row, a type error in a CSV and in a JSONL field, an invalid JSON
line and a body that is not gzip (garbage); every case of test_rel_input.CASES with --slow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from lakekit import assert_lake_tidy, compare_lake, lake_run_message, manifest_of
from relkit import Secrets, is_slow, log_texts
from test_rel_input import CASES, PART, Case, expected_with, plant

import csload
from csload.config import Settings
from csload.simulator import Simulator

TARGET = "parquet"
DEFAULT_CASES = ("csv: too many columns", "csv: text in an integer field",
                 "jsonl: invalid JSON line", "jsonl: text in an integer field",
                 "csv: not gzip, garbage")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        by_name = {c.name: c for c in CASES}
        chosen = CASES if is_slow(metafunc.config) else [by_name[n] for n in DEFAULT_CASES]
        metafunc.parametrize("case", chosen, ids=[c.name for c in chosen])


def test_bad_input_into_a_lake(case: Case, simulator: Simulator, settings: Settings,
                               secrets: Secrets, tmp_path: Path,
                               caplog: pytest.LogCaptureFixture,
                               record: Callable[..., None]) -> None:
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "lake"
    job, bad, runs, others, line = plant(simulator, case)

    report = csload.sync(settings, parquet=root, jobs=[job])

    message = next((r.message or "" for r in report.failed if r.run_id == bad), "")
    if case.expect == "error":
        acc = compare_lake(root, simulator, others)
    else:
        acc = compare_lake(root, simulator, runs,
                           expected_with(simulator, job, runs, bad, case.expect))
    record("bad input", case.name, target=TARGET, format=case.fmt, expect=case.expect,
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
        assert len(message) < 400, message
        acc.assert_exact()          # the other runs, and nothing of the bad one
        in_lake = {run for entry in manifest_of(root).tables.values()
                   for part in entry.partitions.values() for run in part.runs}
        assert bad not in in_lake and set(others) <= in_lake
        status = lake_run_message(root, bad)
        assert status is not None and status[0] == "failed" and where in status[1], status
    else:
        assert report.exit_code == 0, message
        acc.assert_exact()
        if case.says:
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any(case.says in w for w in warnings), warnings
    assert_lake_tidy(root)
    secrets.scan(log_texts(caplog), "a log line")
    secrets.scan([json.dumps(report.to_json())], "the report")

    if case.expect != "error":
        return
    simulator.faults.part_bodies.clear()
    again = csload.sync(settings, parquet=root, jobs=[job])
    assert [r.run_id for r in again.loaded] == [bad] and again.exit_code == 0
    compare_lake(root, simulator, runs).assert_exact()
    assert_lake_tidy(root)
