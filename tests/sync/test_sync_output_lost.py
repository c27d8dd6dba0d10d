"""What csload prints never stops what it does (csload.cli.streams), as a real process.

Seen before: a sync whose log went to a full disk stopped at its first log line and loaded
nothing (exit 1, nothing said); piped into `head -1` the same; one whose stdout was a closed
pipe exited 1 after every run had committed; in an ISO-8859-1 locale `csload status` and every
sync printing a "—" ended in a UnicodeEncodeError, `--json` printing nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from csload.simulator import Simulator
from tests.support.syncref import assert_db_matches, expected_tables, successful_runs


def csload_process(env: dict[str, str], cwd: Path, *args: str, **streams: object
                   ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "csload", *args], env=env, cwd=cwd,
                          timeout=300, check=False, **streams)  # type: ignore[call-overload]


@pytest.mark.parametrize("lost", ["stdout", "stderr", "both"])
def test_a_sync_whose_output_cannot_be_written_loads_everything(
        simulator: Simulator, child_env: dict[str, str], tmp_path: Path, lost: str) -> None:
    db = tmp_path / "cs.duckdb"
    with open(os.devnull, "wb") as sink, open("/dev/full", "wb") as full:
        proc = csload_process(child_env, tmp_path, "sync", "--db", str(db),
                              stdout=full if lost in ("stdout", "both") else sink,
                              stderr=full if lost in ("stderr", "both") else sink)
    assert proc.returncode == 0
    assert_db_matches(db, expected_tables(simulator, successful_runs(simulator)))


def test_a_sync_piped_into_a_reader_that_went_away_loads_everything(
        simulator: Simulator, child_env: dict[str, str], tmp_path: Path) -> None:
    """`csload sync 2>&1 | head -1`: every write after the reader left is EPIPE."""
    db = tmp_path / "cs.duckdb"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = csload_process(child_env, tmp_path, "sync", "--db", str(db),
                              stdout=write_end, stderr=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 0
    assert_db_matches(db, expected_tables(simulator, successful_runs(simulator)))


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_a_locale_without_a_character_escapes_it(
        simulator: Simulator, child_env: dict[str, str], tmp_path: Path, encoding: str) -> None:
    db = tmp_path / "cs.duckdb"
    env = {**child_env, "PYTHONIOENCODING": encoding}
    assert csload_process(env, tmp_path, "sync", "--db", str(db),
                          capture_output=True).returncode == 0
    # The simulator's legacy job has a run that FAILED at Contentsquare: status says so on a
    # line with a "—".
    shown = csload_process(env, tmp_path, "status", "--db", str(db), capture_output=True)
    assert shown.returncode == 0, shown.stderr
    assert b"\\u2014 csload backfill --gaps fills it" in shown.stdout
    as_json = csload_process(env, tmp_path, "status", "--db", str(db), "--json",
                             capture_output=True)
    assert as_json.returncode == 0, as_json.stderr
    assert max(as_json.stdout) < 0x80   # JSON's own escapes, which every encoding can write
    problems = [problem["text"] for problem in json.loads(as_json.stdout)["problems"]]
    assert any("\u2014" in text for text in problems), problems
