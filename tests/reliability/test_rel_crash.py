"""Crash safety: `kill -9` of a real `csload sync` at seeded points across the download, load
and ledger phases, then a sync again: the tables are exactly the truth. And a full disk while
staging or while writing: a clear error, the data loaded before intact, and the next sync (with
space again) completes.

The crash points are (seam, occurrence) pairs drawn with a fixed seed from the 13 seams of
tests/support/sync_child.py: 20 with --slow (every seam at least once), the first 6 of those by
default (the phases take turns, so two of each). How many times a sync reaches each seam is
counted once per session by a child in "count" mode on the same seeded world, so every drawn
occurrence is one the sync really reaches; the occurrence is the drawn fraction of that count.

In the crashed sync one run fails to parse (its part is served broken), so that recording a
failed run is among the seams; the next sync gets the part whole and must load that run too.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.config import Settings
from csload.errors import StoreError
from csload.load.duckdb import DuckDBStore
from csload.pipeline.sync import staging_dir
from csload.simulator import Simulator
from csload.transfer import storage
from tests.support.crash_harness import (
    COUNTED_AS,
    SEAMS,
    broken_part,
    count_seams,
    crash_points,
    fill,
    parametrize_points,
    run_sync_child,
)
from tests.support.relkit import Secrets, compare, exception_texts, is_slow, world
from tests.support.syncref import SESSIONS_JOB, VIEWS_JOB, successful_runs
from tests.support.targets import TARGETS, SyncTarget

CHILD = "tests.support.sync_child"
PHASE_OF = {seam: phase for phase, seams in SEAMS.items() for seam in seams}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_points(metafunc, crash_points(is_slow(metafunc.config)))


def run_child(folder: Path, env: dict[str, str], db: Path, stop: str, action: str = "kill"
              ) -> subprocess.CompletedProcess[str]:
    return run_sync_child(CHILD, ["--db", str(db)], folder, env, stop, action)


@pytest.fixture(scope="module")
def seam_counts(slow: bool, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """How many times an uninterrupted sync (with the broken part) reaches each seam."""
    sim = Simulator(world(slow))
    run, part, body = broken_part(sim)
    sim.faults.part_bodies[(run, part)] = body
    folder = tmp_path_factory.mktemp("counts")
    return count_seams(sim, folder, CHILD, ["--db", str(folder / "count.duckdb")], PHASE_OF)


def ledger_runs(db: Path) -> dict[int, str]:
    if not db.exists():
        return {}
    con = duckdb.connect(str(db), read_only=True)
    try:
        if not con.execute("SELECT count(*) FROM duckdb_tables() "
                           "WHERE schema_name = '_csload' AND table_name = 'runs'").fetchone()[0]:  # type: ignore[index]
            return {}
        return {int(r[0]): r[1] for r in con.execute(
            "SELECT run_id, status FROM _csload.runs").fetchall()}
    finally:
        con.close()


def test_kill_9_at_a_seeded_point_then_sync_again_gives_the_truth(
    point: tuple[str, float], seam_counts: dict[str, int], simulator: Simulator,
    settings: Settings, secrets: Secrets, child_env: dict[str, str], tmp_path: Path,
    record: Callable[..., None],
) -> None:
    seam, fraction = point
    count = seam_counts[COUNTED_AS.get(seam, seam)]
    occurrence = max(1, math.ceil(fraction * count))
    bad_run, bad_part, body = broken_part(simulator)
    simulator.faults.part_bodies[(bad_run, bad_part)] = body
    db = tmp_path / "crashed.duckdb"

    proc = run_child(tmp_path, child_env, db, f"{seam}:{occurrence}")

    assert proc.returncode == -signal.SIGKILL, (seam, occurrence, proc.stdout, proc.stderr)
    # What the crash left: whole runs only, each exactly as the reference has it.
    left = ledger_runs(db)
    survived = [run for run, status in left.items() if status == "loaded"]
    after_crash = compare(db, simulator, survived)
    after_crash.assert_exact()
    assert bad_run not in survived

    simulator.faults.part_bodies.clear()
    report = csload.sync(settings, db=db)

    everything = successful_runs(simulator)
    acc = compare(db, simulator, everything)
    record("crash", f"{seam} #{occurrence}", phase=PHASE_OF[seam], seam=seam,
           occurrence=occurrence, of=count, runs_committed_before_kill=len(survived),
           failed_recorded_before_kill=[r for r, s in left.items() if s == "failed"],
           **acc.fields())
    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert sorted([*survived, *(r.run_id for r in report.loaded)]) == sorted(everything)
    acc.assert_exact()
    assert set(ledger_runs(db).values()) - {"source_failed"} == {"loaded"}
    assert not staging_dir(db).exists()
    secrets.scan([proc.stdout, proc.stderr], "the killed sync's output")
    secrets.check_storage(simulator)


# --- a full disk -----------------------------------------------------------------------------

def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def full_disk_insert(self: DuckDBStore, *args: object) -> None:
    raise duckdb.IOException(f'Could not write file "{self.path}": No space left on device')


@pytest.mark.parametrize("target_kind", TARGETS)
def test_disk_full_while_staging_fails_those_runs_clearly_and_keeps_the_data(
    small_disk: Path | None, target: SyncTarget, simulator: Simulator, settings: Settings,
    secrets: Secrets, monkeypatch: pytest.MonkeyPatch, record: Callable[..., None],
) -> None:
    first = csload.sync(settings, **target.sync_to, jobs=[SESSIONS_JOB])
    before = [r.run_id for r in first.loaded]
    if small_disk is not None:
        # Staging lives beside the database (in the lake's download folder); here it is a link
        # to the small disk. (The sync cannot remove a link with rmtree, so the link outlives
        # each sync.)
        target.staging.symlink_to(small_disk, target_is_directory=True)
        filler = fill(small_disk, leave=4096)
        folder = "the lake's download folder" if target.is_lake else "staging folder"
        path = f"tmpfs 6 MiB, {folder} on it, 4 KiB left"
    else:
        def write(self: storage._TempFile, chunk: bytes) -> None:
            raise enospc()

        monkeypatch.setattr(storage._TempFile, "write", write)
        path = "simulated ENOSPC on every staging write (no tmpfs)"

    report = csload.sync(settings, **target.sync_to)

    failed = {r.run_id: r.message or "" for r in report.failed}
    loaded = [r.run_id for r in report.loaded]
    acc_during = target.compare(simulator, [*before, *loaded])
    assert report.exit_code == 3 and failed, [r.status for r in report.runs]
    for run_id, message in failed.items():
        job_id = simulator.run(run_id).job_id
        assert f"job {job_id}, run {run_id}, part " in message, message
        assert "cannot write the staging file" in message and "No space left" in message
    acc_during.assert_exact()
    assert {r for r, s in target.statuses().items() if s == "failed"} == set(failed)
    secrets.scan([json.dumps(report.to_json())], "the report")

    if small_disk is not None:
        filler.unlink()
        target.staging.unlink()
    else:
        monkeypatch.undo()
    again = csload.sync(settings, **target.sync_to)

    acc = target.compare(simulator, successful_runs(simulator))
    case = "while staging the downloads" if target.is_lake else "while staging"
    record("disk full", case, **target.summary, path=path, runs_failed=len(failed),
           message=next(iter(failed.values())), **acc.fields())
    assert again.exit_code == 0
    acc.assert_exact()
    target.assert_tidy()


def test_disk_full_while_writing_the_database_is_a_clear_error_and_keeps_the_data(
    small_disk: Path | None, simulator: Simulator, settings: Settings, secrets: Secrets,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record: Callable[..., None],
) -> None:
    if small_disk is not None:
        db = small_disk / "cs.duckdb"
        # Staging on the roomy disk: only the database's own writes meet the full disk.
        elsewhere = tmp_path / "staging"
        elsewhere.mkdir()
        staging_dir(db).symlink_to(elsewhere, target_is_directory=True)
    else:
        db = tmp_path / "cs.duckdb"
    first = csload.sync(settings, db=db, jobs=[SESSIONS_JOB])
    before = [r.run_id for r in first.loaded]
    if small_disk is not None:
        filler = fill(small_disk, leave=16384)
        path = "tmpfs 6 MiB holding the database, 16 KiB left"
    else:
        monkeypatch.setattr(DuckDBStore, "_insert_group", full_disk_insert)
        path = "simulated ENOSPC inside every load INSERT (no tmpfs)"

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, db=db, jobs=[VIEWS_JOB])

    text = str(raised.value)
    assert "No space left on device" in text, text
    secrets.scan(exception_texts(raised.value), "the exception")
    if small_disk is not None:
        filler.unlink()
    else:
        monkeypatch.undo()
    compare(db, simulator, before).assert_exact()

    again = csload.sync(settings, db=db)

    acc = compare(db, simulator, successful_runs(simulator))
    record("disk full", "while writing the database", path=path, message=text, **acc.fields())
    assert again.exit_code == 0, [r.message for r in again.failed]
    acc.assert_exact()


def test_disk_full_with_database_and_staging_on_one_disk_is_a_clear_cli_error(
    small_disk: Path | None, simulator: Simulator, settings: Settings, secrets: Secrets,
    child_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    record: Callable[..., None],
) -> None:
    """The default layout: the failure may come from a staging write or from recording it in
    the database; either way `csload sync` says so in one line (no traceback), and nothing
    loaded before is touched."""
    db = (small_disk or tmp_path) / "cs.duckdb"
    first = csload.sync(settings, db=db, jobs=[SESSIONS_JOB])
    before = [r.run_id for r in first.loaded]
    if small_disk is not None:
        filler = fill(small_disk, leave=2048)
        path = "tmpfs 6 MiB holding the database and the staging folder, 2 KiB left"
    else:
        def write(self: storage._TempFile, chunk: bytes) -> None:
            raise enospc()

        monkeypatch.setattr(storage._TempFile, "write", write)
        monkeypatch.setattr(DuckDBStore, "_insert_group", full_disk_insert)
        path = "simulated ENOSPC on staging writes and load INSERTs (no tmpfs)"
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in child_env.items() if k.startswith("CONTENTSQUARE_")}

    result = CliRunner().invoke(main, ["sync", "--db", str(db), "--json"], env=env,
                                catch_exceptions=False)

    if result.exit_code == 1:
        # The database could not take even the failure record: one clear line.
        assert result.stderr.startswith("error: ") and "No space left on device" in result.stderr
        assert "Traceback" not in result.stderr
        outcome = "sync stopped: " + result.stderr.strip()
    else:
        assert result.exit_code == 3, result.output
        report = json.loads(result.stdout)
        failed = [r for r in report["runs"] if r["status"] == "failed"]
        assert failed and all("No space left on device" in r["message"] for r in failed)
        outcome = f"{len(failed)} runs failed: " + failed[0]["message"]
    secrets.scan([result.stdout, result.stderr], "the CLI output")
    monkeypatch.undo()
    if small_disk is not None:
        filler.unlink()
    loaded_now = [run for run, status in ledger_runs(db).items() if status == "loaded"]
    assert set(before) <= set(loaded_now)
    compare(db, simulator, loaded_now).assert_exact()

    again = csload.sync(settings, db=db)

    acc = compare(db, simulator, successful_runs(simulator))
    record("disk full", "database and staging on one disk (CLI)", path=path, message=outcome,
           **acc.fields())
    assert again.exit_code == 0, [r.message for r in again.failed]
    acc.assert_exact()
