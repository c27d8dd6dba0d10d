"""A sync and the other processes that open its database: who holds it, and `--wait`.

DuckDB lets one process write a database and no other process open it meanwhile; a process
that only reads shuts writers out too. A holder here is a real process: a Python one-liner
with a DuckDB connection (an analyst's notebook), or a real `csload sync` held after its first
commit (sync_child.py). The messages must name that process, not guess "another sync", and
`--wait` must wait for it and then load everything.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import Result

import csload
from csload.config import Limits, load_settings
from csload.errors import ConfigError, StoreLockedError
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import Simulator
from tests.support.children import child_command, child_environ
from tests.support.syncref import (
    SESSIONS_JOB,
    VIEWS_JOB,
    assert_db_matches,
    expected_tables,
    successful_runs,
)

CHILD = "tests.support.sync_child"
JOBS = (SESSIONS_JOB, VIEWS_JOB)
JOB_ARGS = [arg for job in JOBS for arg in ("--job", str(job))]


@contextmanager
def holder(db: Path, *, read_only: bool) -> Iterator[subprocess.Popen[str]]:
    """A process with a DuckDB connection to `db` until its stdin is closed."""
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, duckdb; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro'); "
         "print('HELD', flush=True); sys.stdin.read()", str(db), "ro" if read_only else "rw"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "HELD"
        yield proc
    finally:
        release(proc)


def release(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    proc.wait(timeout=60)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def existing_db(db_path: Path) -> Path:
    """A csload database with nothing loaded yet (a read-only holder needs the file)."""
    con = csload.connect(db_path, create=True)
    con.close()
    return db_path


def test_a_read_only_notebook_blocks_the_sync_and_the_message_names_it(
    cli: Callable[..., Result], existing_db: Path,
) -> None:
    with holder(existing_db, read_only=True) as notebook:
        result = cli("sync", "--db", str(existing_db), *JOB_ARGS)

    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    message = lines[0]
    assert f"in use by another process (PID {notebook.pid}: python" in message
    assert "a read-only connection" in message
    assert "another csload sync" not in message
    assert "--wait" in message and "lake of Delta tables" in message


def test_wait_waits_for_the_notebook_then_loads_everything(
    simulator: Simulator, child_env: dict[str, str], existing_db: Path, tmp_path: Path,
) -> None:
    with holder(existing_db, read_only=True) as notebook:
        sync = subprocess.Popen(
            [sys.executable, "-m", "csload", "sync", "--db", str(existing_db), "--wait", "5m",
             *JOB_ARGS],
            env=child_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert sync.stderr is not None
        seen = []
        for line in sync.stderr:
            seen.append(line)
            if "waiting up to 5m" in line:
                break
        assert f"PID {notebook.pid}" in seen[-1], "".join(seen)
        release(notebook)   # the notebook closes its connection
        _out, err = sync.communicate(timeout=120)

    assert sync.returncode == 0, "".join(seen) + err
    assert_db_matches(existing_db, expected_tables(simulator, successful_runs(simulator, JOBS)))


def test_wait_gives_up_after_the_duration(
    cli: Callable[..., Result], existing_db: Path,
) -> None:
    with holder(existing_db, read_only=False) as other:
        result = cli("sync", "--db", str(existing_db), "--wait", "1s", *JOB_ARGS)

    assert result.exit_code == 1
    assert f"PID {other.pid}" in result.output
    assert "(after waiting 1s)" in result.output
    assert "waiting up to 1s for it to be free" in result.output


def test_the_python_api_waits_with_the_wait_keyword(
    simulator: Simulator, settings: csload.Settings, existing_db: Path,
) -> None:
    with holder(existing_db, read_only=True) as notebook:
        notes: list[str] = []

        def on_event(event: SyncEvent) -> None:
            if event.kind is EventKind.MESSAGE and event.message and "waiting" in event.message:
                notes.append(event.message)
                release(notebook)

        report = csload.sync(settings, db=existing_db, jobs=JOBS, wait="10m",
                             on_event=on_event)

    assert len(notes) == 1 and f"PID {notebook.pid}" in notes[0]
    assert report.exit_code == 0 and len(report.loaded) == len(successful_runs(simulator, JOBS))


def test_connect_read_only_while_another_process_writes(existing_db: Path) -> None:
    with holder(existing_db, read_only=False) as writer, \
            pytest.raises(StoreLockedError) as caught:
        csload.connect(existing_db, read_only=True)

    assert caught.value.pid == writer.pid
    message = str(caught.value)
    assert f"open for writing in another process (PID {writer.pid}" in message
    assert "even read-only" in message and "lake of Delta tables" in message


def test_status_and_dry_run_while_a_sync_runs_say_why_not(
    cli: Callable[..., Result], child_env: dict[str, str], db_path: Path, tmp_path: Path,
) -> None:
    """A real `csload sync`, held right after its first commit, has the database open."""
    sync = subprocess.Popen(
        child_command(CHILD, "sync", "--db", str(db_path), *JOB_ARGS),
        env=child_environ({**child_env, "CSLOAD_TEST_STOP": "after-commit:1",
                           "CSLOAD_TEST_ACTION": "hold"}),
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert sync.stdout is not None
    try:
        assert sync.stdout.readline().strip() == "HOLDING"
        status = cli("status", "--db", str(db_path))
        dry_run = cli("sync", "--dry-run", "--db", str(db_path), *JOB_ARGS)
    finally:
        _out, err = sync.communicate("", timeout=120)

    for result in (status, dry_run):
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert f"open for writing in another process (PID {sync.pid}: " in lines[0]
        assert "run this again once that process has finished" in lines[0]
    assert sync.returncode == 0, err


def test_the_wait_setting_from_the_environment_and_the_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "csload.toml"
    config.write_text('client_id = "a"\nclient_secret = "b"\n[limits]\nlock_wait = "1h"\n')
    assert load_settings(environ={}, config_file=config).limits.lock_wait == 3600
    env = {"CSLOAD_LOCK_WAIT": "10m"}
    assert load_settings(environ=env, config_file=config).limits.lock_wait == 600
    flag = {"limits": {"lock_wait": 30.0}}
    assert load_settings(overrides=flag, environ=env, config_file=config
                         ).limits.lock_wait == 30
    with pytest.raises(ConfigError, match="expected a duration such as 30s"):
        load_settings(environ={"CSLOAD_LOCK_WAIT": "soon"}, config_file=config)
    with pytest.raises(ConfigError, match="lock_wait"):
        Limits(lock_wait=-1)


def test_a_bad_wait_flag_is_a_usage_error(cli: Callable[..., Result], db_path: Path) -> None:
    result = cli("sync", "--db", str(db_path), "--wait", "later")
    assert result.exit_code == 2
    assert "expected a duration such as 30s, 5m, 1h" in result.output


def test_a_lake_reader_never_blocks_the_sync(settings: csload.Settings, tmp_path: Path
                                             ) -> None:
    """The README's advice for live readers: a connection to a lake stays open across a sync."""
    root = tmp_path / "lake"
    csload.sync(settings, parquet=root, jobs=[SESSIONS_JOB])
    with csload.connect(parquet=str(root)) as reader:
        before = reader.sql("SELECT count(*) FROM sessions").fetchall()
        report = csload.sync(settings, parquet=root, jobs=JOBS)
        assert report.exit_code == 0 and {run.table for run in report.loaded} == {"views"}
        assert reader.sql("SELECT count(*) FROM sessions").fetchall() == before
