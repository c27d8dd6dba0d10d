"""Issue 16, hostile text and files at the CLI: terminal escapes from the API never reach the
terminal or a log, an unexpected exception is one scrubbed line (a traceback with --debug),
and `csload demo --db` replaces only a database the demo made.

Against the simulator over real HTTP, in-process (click's runner, stdout and stderr apart).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from csload.cli import main
from csload.simulator import Simulator

# A job name as a hostile API could send it: retitle the terminal, clear the screen, ring the
# bell, forge a log line, and flip the text's direction.
HOSTILE_NAME = "Daily\x1b]0;pwned\x07 sessions\x1b[2J\r\n2026-01-01 ERROR forged\u202e"
CONTROLS = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def assert_no_control(result: Result) -> None:
    for stream in (result.stdout, result.stderr):
        found = [char for char in CONTROLS if char in stream]
        assert not found, (found, stream)


@pytest.mark.hostile("a job name with terminal escapes, a bell, a forged log line, a direction "
                     "flip",
                     "never reaches stdout, stderr or a log line")
def test_hostile_control_characters_in_job_names_never_reach_the_output(
        env: dict[str, str], simulator: Simulator, tmp_path: Path) -> None:
    job = next(job for job in simulator.jobs if job.scope == "sessions")
    job.name = HOSTILE_NAME

    synced = invoke(["sync", "--db", "cs.duckdb", "--job", str(job.job_id)], env)
    assert synced.exit_code == 0, synced.output
    assert_no_control(synced)
    assert "Daily]0;pwned sessions[2J  2026-01-01 ERROR forged" in synced.stderr
    # One log line per event: the name's line break forged none.
    assert not any(line.startswith("2026-01-01") for line in synced.stderr.splitlines())

    status = invoke(["status", "--db", "cs.duckdb"], {**env, "COLUMNS": "300"})
    assert status.exit_code == 0, status.output
    assert_no_control(status)
    assert "Daily]0;pwned sessions[2J  2026-01-01 ERROR forged" in status.stdout


def damaged_ledger(path: Path) -> Path:
    """A csload database whose ledger table was replaced by one of another shape (a column
    named with a terminal escape): reading it fails in a way csload does not check."""
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA _csload")
    con.execute("CREATE TABLE _csload.meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO _csload.meta VALUES ('schema_version', '1')")
    con.execute('CREATE TABLE _csload.runs ("x\x1b[2J\x1b]0;pwned\x07" INTEGER)')
    con.close()
    return path


@pytest.mark.hostile("an exception csload did not expect",
                     "one scrubbed `error:` line, exit 1, no traceback")
def test_hostile_unexpected_error_is_one_scrubbed_line(tmp_path: Path) -> None:
    db = damaged_ledger(tmp_path / "damaged.duckdb")

    result = invoke(["status", "--db", str(db)])

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unexpected BinderException: "), lines
    assert "run again with `csload --debug ...` for the traceback" in lines[0]
    assert "Traceback" not in result.stderr
    assert_no_control(result)

    as_json = invoke(["status", "--db", str(db), "--json"])
    assert as_json.exit_code == 1
    assert '"kind": "BinderException"' in as_json.stdout and "\\u001b" not in as_json.stdout


@pytest.mark.hostile("the same with `--debug`",
                     "the traceback, for the user who asked")
def test_hostile_unexpected_error_with_debug_shows_the_traceback(tmp_path: Path) -> None:
    db = damaged_ledger(tmp_path / "damaged.duckdb")
    with pytest.raises(duckdb.BinderException):
        invoke(["--debug", "status", "--db", str(db)])


@pytest.mark.parametrize("kind", ["text file", "csload database", "link"])
@pytest.mark.hostile("`csload demo --db` given a text file, a real csload database or a link",
                     "refused; the file kept")
def test_hostile_demo_refuses_to_replace_a_file_it_did_not_make(
        tmp_path: Path, kind: str) -> None:
    target = tmp_path / "precious.txt"
    given = target
    if kind == "text file":
        target.write_text("a year of notes")
    else:
        target = tmp_path / "precious.duckdb"
        con = duckdb.connect(str(target))
        con.execute("CREATE SCHEMA _csload; CREATE TABLE _csload.meta (key VARCHAR PRIMARY KEY,"
                    " value VARCHAR); CREATE TABLE main.sessions AS SELECT 42 AS id")
        con.close()
        given = target
        if kind == "link":
            given = tmp_path / "demo.duckdb"
            given.symlink_to(target)
    before = target.read_bytes()

    result = invoke(["demo", "--db", str(given)])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: --db {given}: that file is not a database made by csload demo, so the demo "
        "will not replace it; choose another path (--db), or remove the file yourself if it "
        "is not needed"]
    assert target.read_bytes() == before
    assert given.is_symlink() == (kind == "link")


def test_demo_replaces_its_own_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    first = invoke(["demo", "--db", str(db), "--days", "1"])
    assert first.exit_code == 0, first.output
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE main.scratch AS SELECT 1 AS x")   # a change the next demo drops
    con.close()

    again = invoke(["demo", "--db", str(db), "--days", "1"])

    assert again.exit_code == 0, again.output
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
    finally:
        con.close()
    assert "scratch" not in tables and {"sessions", "views"} <= tables
