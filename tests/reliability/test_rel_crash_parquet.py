"""Crash safety of the lake target (Delta tables): `kill -9` of a real
`csload sync --parquet ROOT` at seeded points across the download, write and ledger phases,
then a sync again: the lake is exactly the truth. And a full disk (a 6 MiB tmpfs) while writing
the lake, and with the lake and its downloads on one disk through the CLI: a clear error, the
ledger's versions intact and readable, and the next sync (with space again) completes. (A full
disk while staging the downloads is test_rel_crash.py's, run into both targets.)

The crash points are drawn as in test_rel_crash.py (same seed, same rule: every seam once in a
seeded order, the phases taking turns, then seeded random ones up to 20 with --slow; the first 6
by default, two of each phase) from the seams of lake_sync_child.py; the occurrence is the drawn
fraction of how many times an uninterrupted sync (counted once per session by a child in
"count" mode) reaches the seam. As there, one run fails to parse in the crashed sync (so that
recording a failed run is a seam too); the next sync gets the part whole.

Right after the kill, before anything recovers: the lake read through csload
(`csload.connect(parquet=ROOT)`, each table at the version the ledger records) holds exactly
the runs its ledger says are loaded, each whole; and a Delta reader of each table's latest
version (which may hold a table commit the ledger does not record yet, when the kill fell
between the two commits) sees whole runs only: no row twice, every day before or after the
batch. After the next sync the lake is exactly the truth through both readers, every table at
its ledger's version; the files the killed sync wrote and never committed may remain (the
vacuum removes them once past the retention window).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.config import Settings
from csload.errors import StoreError
from csload.lake import store
from csload.lake.store import ParquetStore
from csload.simulator import ServerHandle, Simulator
from tests.support.crash_harness import (
    broken_part,
    count_seams,
    crash_points,
    fill,
    parametrize_points,
    run_sync_child,
)
from tests.support.lakekit import (
    assert_lake_tidy,
    assert_latest_whole_runs,
    compare_lake,
    delta_tables,
    downloads_dir,
    lake_rows,
    lake_runs,
    lake_tables,
    snapshot_of,
    tables_ahead,
)
from tests.support.relkit import LIMITS, RETRY, Secrets, exception_texts, is_slow, world
from tests.support.syncref import SESSIONS_JOB, VIEWS_JOB, successful_runs

CHILD = "tests.support.lake_sync_child"
POINTS_DEFAULT = 6
SEAMS = {
    "download": ("download", "part-verified", "staged"),
    "write": ("store-apply", "insert", "read-partitions", "files-written", "table-committed"),
    "ledger": ("record-failed", "ledger-committed", "vacuum", "discard"),
}
PHASE_OF = {seam: phase for phase, seams in SEAMS.items() for seam in seams}
COUNTED_AS = {"download": "part-verified"}
# The one seam between a table's commit and the ledger's: a kill there leaves that table's
# log ahead of the ledger.
BETWEEN_COMMITS = "table-committed"
TARGET = "parquet"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_points(metafunc, crash_points(is_slow(metafunc.config), SEAMS, POINTS_DEFAULT))


def run_child(folder: Path, env: dict[str, str], root: Path, stop: str, action: str = "kill"
              ) -> subprocess.CompletedProcess[str]:
    return run_sync_child(CHILD, ["--parquet", str(root)], folder, env, stop, action)


@pytest.fixture(scope="module")
def seam_counts(slow: bool, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """How many times an uninterrupted lake sync (with the broken part) reaches each seam."""
    sim = Simulator(world(slow))
    run, part, body = broken_part(sim)
    sim.faults.part_bodies[(run, part)] = body
    rerun_a_loaded_day(sim)
    folder = tmp_path_factory.mktemp("lake-counts")
    return count_seams(sim, folder, CHILD, ["--parquet", str(folder / "lake")], PHASE_OF)


def rerun_a_loaded_day(sim: Simulator) -> None:
    """A re-run of a day of the views job: applied after the day's first run (one run per
    batch, LIMITS), it reads that day's partition back in, so `read-partitions` is a seam a
    sync into a new lake reaches."""
    sim.rerun(VIEWS_JOB, date(2026, 11, 22))


def loaded_runs(root: Path) -> list[int]:
    return [run for run, status in lake_runs(root).items() if status == "loaded"]


def check_what_the_kill_left(root: Path, sim: Simulator
                             ) -> tuple[list[int], list[str], set[int]]:
    """(runs the ledger holds as loaded, tables whose log is ahead of the ledger, runs a Delta
    reader sees beyond the ledger's), once both readers were checked (module docstring)."""
    survived = loaded_runs(root)
    if snapshot_of(root).exists:
        # Through csload: the ledger's versions, whole runs only.
        compare_lake(root, sim, survived).assert_exact(listing=False)
    else:
        assert not survived and not lake_tables(root)
    ahead = tables_ahead(root)
    beyond = assert_latest_whole_runs(root, sim, survived)
    # Rows of runs the ledger does not hold are only in a table committed ahead of it.
    assert not beyond or ahead, (beyond, ahead)
    return survived, ahead, beyond


def test_kill_9_of_a_lake_sync_at_a_seeded_point_then_sync_again_gives_the_truth(
    point: tuple[str, float], seam_counts: dict[str, int], simulator: Simulator,
    settings: Settings, secrets: Secrets, child_env: dict[str, str], tmp_path: Path,
    record: Callable[..., None],
) -> None:
    seam, fraction = point
    count = seam_counts[COUNTED_AS.get(seam, seam)]
    occurrence = max(1, math.ceil(fraction * count))
    bad_run, bad_part, body = broken_part(simulator)
    simulator.faults.part_bodies[(bad_run, bad_part)] = body
    rerun_a_loaded_day(simulator)
    root = tmp_path / "lake"

    proc = run_child(tmp_path, child_env, root, f"{seam}:{occurrence}")

    assert proc.returncode == -signal.SIGKILL, (seam, occurrence, proc.stdout, proc.stderr)
    left = lake_runs(root)
    survived, ahead, beyond = check_what_the_kill_left(root, simulator)
    assert bad_run not in survived
    # Only a kill between a table's commit and the ledger's leaves a log ahead of the ledger:
    # the one table that batch committed.
    assert len(ahead) == (seam == BETWEEN_COMMITS), (seam, ahead)

    simulator.faults.part_bodies.clear()
    report = csload.sync(settings, parquet=root)

    everything = successful_runs(simulator)
    acc = compare_lake(root, simulator, everything)
    record("crash", f"{seam} #{occurrence}", target=TARGET, phase=PHASE_OF[seam], seam=seam,
           occurrence=occurrence, of=count, runs_committed_before_kill=len(survived),
           tables_ahead_after_kill=ahead, runs_beyond_ledger_after_kill=sorted(beyond),
           failed_recorded_before_kill=[r for r, s in left.items() if s == "failed"],
           **acc.fields())
    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert sorted([*survived, *(r.run_id for r in report.loaded)]) == sorted(everything)
    acc.assert_exact()
    assert set(lake_runs(root).values()) - {"source_failed"} == {"loaded"}
    assert_lake_tidy(root, orphans=True)
    secrets.scan([proc.stdout, proc.stderr], "the killed sync's output")
    secrets.check_storage(simulator)


# The default world, also under --slow: which commit creates a table depends on the world.
@pytest.mark.parametrize("sim_config", [world(False)], ids=["default-world"])
@pytest.mark.parametrize(("occurrence", "recorded"), [(3, True), (5, False)],
                         ids=["table-in-the-ledger", "table-new-to-the-ledger"])
def test_readers_right_after_a_kill_between_a_table_commit_and_the_ledger_commit(
    occurrence: int, recorded: bool, simulator: Simulator, child_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """In the default world the 3rd table commit is to a table an earlier batch created
    (opening the lake restores it to the ledger's version), the 5th creates a table (opening
    the lake removes it); either way both readers agree again."""
    root = tmp_path / "lake"
    proc = run_child(tmp_path, child_env, root, f"{BETWEEN_COMMITS}:{occurrence}")
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    survived, ahead, beyond = check_what_the_kill_left(root, simulator)
    assert len(ahead) == 1 and (ahead[0] in lake_tables(root)) == recorded, ahead
    # csload's reader does not show the batch; a Delta reader shows all of its run's rows.
    assert beyond and not beyond & set(survived), (beyond, survived)

    ParquetStore.open(root).close()   # recovery, and nothing else

    assert tables_ahead(root) == []
    assert assert_latest_whole_runs(root, simulator, survived) == set()
    assert loaded_runs(root) == survived
    assert (ahead[0] in delta_tables(root)) == recorded


# --- a full disk -----------------------------------------------------------------------------

Snapshot = tuple[list[int], dict[str, tuple[set[str], list[dict[str, object]]]]]


def snapshot(root: Path) -> Snapshot:
    """(the runs the ledger holds as loaded, each table's rows through csload). Not the
    ledger's version: a ledger-only commit (a run that failed at Contentsquare) fits in
    what a full disk leaves."""
    return sorted(loaded_runs(root)), {t: lake_rows(root, t) for t in sorted(lake_tables(root))}


def assert_unchanged(root: Path, before: Snapshot, sim: Simulator) -> None:
    """Through csload, the lake as it was; a Delta reader of the latest versions sees whole
    runs (a full disk at the ledger's commit leaves a table committed ahead of it, which the
    next sync undoes)."""
    assert snapshot(root) == before, "the runs loaded before, or their rows, changed"
    assert_latest_whole_runs(root, sim, loaded_runs(root))


def test_disk_full_while_writing_the_lake_is_a_clear_error_and_keeps_the_previous_version(
    small_disk: Path | None, simulator: Simulator, settings: Settings, secrets: Secrets,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record: Callable[..., None],
) -> None:
    root = (small_disk or tmp_path) / "lake"
    if small_disk is not None:
        # Downloads on the roomy disk: only the lake's own writes meet the full disk.
        elsewhere = tmp_path / "downloads"
        elsewhere.mkdir()
        downloads_dir(root).parent.mkdir(parents=True)
        downloads_dir(root).symlink_to(elsewhere, target_is_directory=True)
    first = csload.sync(settings, parquet=root, jobs=[SESSIONS_JOB])
    assert first.exit_code == 0
    before = snapshot(root)
    if small_disk is not None:
        filler = fill(small_disk, leave=16384)
        path = "tmpfs 6 MiB holding the lake, 16 KiB left"
    else:
        def full(*args: object) -> None:
            raise duckdb.IOException('Could not write file "x.parquet": No space left on device')

        # Between the table's commit and the ledger's: the table is left ahead of the ledger.
        monkeypatch.setattr(store, "export_ledger", full)
        path = "simulated ENOSPC exporting the ledger, after the table's commit (no tmpfs)"

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, parquet=root, jobs=[VIEWS_JOB])

    text = str(raised.value)
    assert "No space left on device" in text and str(root) in text, text
    secrets.scan(exception_texts(raised.value), "the exception")
    # The ledger's versions, as they were, before anything recovers.
    assert_unchanged(root, before, simulator)
    if small_disk is not None:
        filler.unlink()
    else:
        monkeypatch.undo()

    again = csload.sync(settings, parquet=root)

    acc = compare_lake(root, simulator, successful_runs(simulator))
    record("disk full", "while writing the lake", target=TARGET, path=path, message=text,
           **acc.fields())
    assert again.exit_code == 0, [r.message for r in again.failed]
    acc.assert_exact()
    # A write cut short by the full disk may leave a file no commit names (vacuumed later).
    assert_lake_tidy(root, orphans=small_disk is not None)


def test_disk_full_with_lake_and_downloads_on_one_disk_is_a_clear_cli_error(
    small_disk: Path | None, simulator: Simulator, settings: Settings, secrets: Secrets,
    child_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    record: Callable[..., None],
) -> None:
    """The default layout: the downloads are staged inside the lake (`_csload/downloads`)."""
    root = (small_disk or tmp_path) / "lake"
    first = csload.sync(settings, parquet=root, jobs=[SESSIONS_JOB])
    assert first.exit_code == 0
    before = snapshot(root)
    if small_disk is not None:
        filler = fill(small_disk, leave=16384)
        path = "tmpfs 6 MiB holding the lake and its download folder, 16 KiB left"
    else:
        pytest.skip("needs a tmpfs (mount refused)")
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in child_env.items() if k.startswith("CONTENTSQUARE_")}

    result = CliRunner().invoke(main, ["sync", "--parquet", str(root), "--json"], env=env,
                                catch_exceptions=False)

    if result.exit_code == 1:
        assert result.stderr.startswith("error: ") and "No space left on device" in result.stderr
        assert "Traceback" not in result.stderr
        outcome = "sync stopped: " + result.stderr.strip()
        assert_unchanged(root, before, simulator)
    else:
        assert result.exit_code == 3, result.output
        report = json.loads(result.stdout)
        failed = [r for r in report["runs"] if r["status"] == "failed"]
        assert failed and all("No space left on device" in r["message"] for r in failed)
        outcome = f"{len(failed)} runs failed: " + failed[0]["message"]
    secrets.scan([result.stdout, result.stderr], "the CLI output")
    filler.unlink()
    loaded_now = loaded_runs(root)
    assert set(before[1]) <= lake_tables(root)
    compare_lake(root, simulator, loaded_now).assert_exact(listing=False)
    assert_latest_whole_runs(root, simulator, loaded_now)

    again = csload.sync(settings, parquet=root)

    acc = compare_lake(root, simulator, successful_runs(simulator))
    record("disk full", "lake and downloads on one disk (CLI)", target=TARGET, path=path,
           message=outcome, **acc.fields())
    assert again.exit_code == 0, [r.message for r in again.failed]
    acc.assert_exact()
    assert_lake_tidy(root, orphans=True)


def test_no_room_at_all_for_the_lake_is_a_clear_cli_error(
    small_disk: Path | None, simulator: Simulator, sim_thread: ServerHandle,
    child_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """test_rel_crash's "2 KiB left" (no free page at all on a tmpfs), for a lake: the sync
    fails cleanly wherever it first needs room (a download's staging file, a table's files or
    a log entry), and the same process syncs the lake once there is room. (Not a cell of the
    matrix: it takes no part in the summary nor in the secrets scans.)"""
    if small_disk is None:
        pytest.skip("needs a tmpfs (mount refused)")
    client_id, client_secret, project_id = simulator.credentials
    settings = Settings(client_id=client_id, client_secret=client_secret,
                        project_id=project_id, auth_url=sim_thread.base_url, retry=RETRY,
                        limits=LIMITS)
    root = small_disk / "lake"
    first = csload.sync(settings, parquet=root, jobs=[SESSIONS_JOB])
    before = snapshot(root)
    filler = fill(small_disk, leave=2048)
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in child_env.items() if k.startswith("CONTENTSQUARE_")}
    try:
        result = CliRunner().invoke(main, ["sync", "--parquet", str(root), "--json"], env=env,
                                    catch_exceptions=False)
    finally:
        filler.unlink()
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert result.stderr.startswith("error: ") and "No space left on device" in result.stderr
    else:
        assert result.exit_code == 3, result.output
        failed = [r for r in json.loads(result.stdout)["runs"] if r["status"] == "failed"]
        assert failed and all("No space left on device" in r["message"] for r in failed)
    assert set(before[1]) <= lake_tables(root)
    assert_latest_whole_runs(root, simulator, loaded_runs(root))
    # The same process can sync the lake again once there is room.
    again = csload.sync(settings, parquet=root)
    assert again.exit_code == 0 and first.exit_code == 0
    compare_lake(root, simulator, successful_runs(simulator)).assert_exact()
    assert not tables_ahead(root)
