"""The host's limits a cron box or a container sets (`ulimit`), met by a real `csload`
process against the simulator (QA, 2026-12-08; csload.host_limits).

    finding                                      csload now
    ulimit -v below what DuckDB / the lake       stops at once, one line naming the limit and
    reserve: runs failed one by one, or the      what it needs; nothing created
    sync hung for good, deaf to SIGTERM
    ulimit -n too low for the downloads: every   the soft limit is raised toward the hard one;
    run failed at every sync, exit 3             below that, one line before any download
    stdout closed (`>&-`): exit 1, "a bug",      exit 0: the work's code
    after every run committed
    stdout on a full disk: nothing said, exit 0  exit 0, and stderr says the output was lost
    a Rust panic (no thread for deltalake):      one line naming the host's limit
    ~60 lines of traceback
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from csload.cli import main
from csload.host_limits import limit_hit
from csload.simulator import Simulator
from tests.support.syncref import successful_runs

GB = 1 << 30


def csload(env: dict[str, str], cwd: Path, *args: str,
           before: Callable[[], None] | None = None,
           stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "csload", *args], env=env, cwd=cwd,
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300,
                          preexec_fn=before, check=False)


def address_space(size: int) -> Callable[[], None]:
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (size, size))


def loaded(db: Path) -> dict[int, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT run_id, rows FROM _csload.runs "
                                "WHERE status = 'loaded'").fetchall())
    finally:
        con.close()


def all_runs_loaded(simulator: Simulator, db: Path) -> bool:
    truth = {run: len(simulator.truth(job.job_id, run)) for job in simulator.jobs
             for run in successful_runs(simulator, [job.job_id])}
    return loaded(db) == truth


@pytest.mark.parametrize(("command", "size", "need"), [
    (["sync", "--db", "cs.duckdb"], 3 * GB // 2, "2 GB for a database"),
    (["status", "--db", "cs.duckdb"], 3 * GB // 2, "2 GB for a database"),
    (["sync", "--parquet", "lake"], 3 * GB, "4 GB for a lake"),
    (["status", "--parquet", "lake"], 2 * GB, "3 GB to read a lake"),
])
def test_too_little_address_space_stops_at_once_saying_so(
        child_env: dict[str, str], tmp_path: Path, command: list[str], size: int,
        need: str) -> None:
    done = csload(child_env, tmp_path, *command, before=address_space(size))
    assert done.returncode == 1, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: this process may use {size >> 20} MB of address "
                           f"space (ulimit -v {size >> 10}), and csload needs {need}"), line
    assert "Raise or lift `ulimit -v`" in line
    assert not (tmp_path / "cs.duckdb").exists() and not (tmp_path / "lake").exists()


def test_too_few_open_files_are_raised_to_the_hard_limit_or_said(
        child_env: dict[str, str], tmp_path: Path, simulator: Simulator) -> None:
    def open_files(soft: int, hard: int) -> Callable[[], None]:
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 200:
        pytest.skip(f"this machine's hard limit on open files is {hard}")   # pragma: no cover
    refused = csload(child_env, tmp_path, "sync", "--db", "cs.duckdb", "--concurrency", "32",
                     before=open_files(48, 48))
    assert refused.returncode == 1, refused.stderr
    assert "error: 32 downloads at once need at least 84 open files, and this process may " \
           "open 48 (ulimit -n): raise `ulimit -n` or lower the downloads in flight " \
           "(--concurrency)" in refused.stderr
    assert simulator.stats.storage_requests == 0
    # Between the least and the comfortable count a sync goes on, as it did before the
    # check (QA: 4 downloads synced at 32, which a first cut refused).
    tight = csload(child_env, tmp_path, "sync", "--db", "tight.duckdb",
                   before=open_files(32, 32))
    assert tight.returncode == 0, tight.stderr
    assert all_runs_loaded(simulator, tmp_path / "tight.duckdb")

    raised = csload(child_env, tmp_path, "sync", "--db", "cs.duckdb", "--concurrency", "32",
                    before=open_files(48, 200))
    assert raised.returncode == 0, raised.stderr
    assert all_runs_loaded(simulator, tmp_path / "cs.duckdb")


def test_a_closed_or_full_stdout_leaves_the_exit_code_to_the_work(
        child_env: dict[str, str], tmp_path: Path, simulator: Simulator) -> None:
    closed = csload(child_env, tmp_path, "sync", "--db", "cs.duckdb", "--json",
                    before=lambda: os.close(1), stdout=None)
    assert closed.returncode == 0, closed.stderr
    assert "Traceback" not in closed.stderr and "bug" not in closed.stderr
    assert all_runs_loaded(simulator, tmp_path / "cs.duckdb")

    with open("/dev/full", "w") as full:
        done = csload(child_env, tmp_path, "status", "--db", "cs.duckdb", stdout=full)
    assert done.returncode == 0, done.stderr
    assert "csload: the output could not be written ([Errno 28] No space left on device)" \
        in done.stderr


class PanicException(BaseException):
    """What deltalake raises when its runtime cannot spawn a thread."""


def test_a_rust_panic_over_a_thread_is_one_line_naming_the_limit(
        monkeypatch: pytest.MonkeyPatch, sim_env: dict[str, str]) -> None:
    def panic(**_: object) -> None:
        raise BaseExceptionGroup("unhandled errors in a TaskGroup", [PanicException(
            "OS can't spawn worker thread: Resource temporarily unavailable (os error 11)")])

    monkeypatch.setattr("csload.api.calls.jobs", panic)
    result = CliRunner().invoke(main, ["jobs"], env=sim_env)

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("error: the host refused a new thread: its limit on processes and "
                           "threads is too low (`ulimit -u`, a container's pids limit); raise "
                           "it (PanicException: OS can't spawn worker thread"), line
    assert limit_hit(RuntimeError("can't start new thread")) is not None
    assert limit_hit(OSError(24, "Too many open files")) is not None
    assert limit_hit(ValueError("no")) is None
