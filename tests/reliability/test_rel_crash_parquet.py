"""Crash safety of the Parquet lake target: `kill -9` of a real `csload sync --parquet ROOT` at
seeded points across the download, write/swap and manifest/ledger phases, then a sync again:
the lake is exactly the truth. And a full disk (a 6 MiB tmpfs) while staging the downloads,
while writing the lake, and with both on one disk through the CLI: a clear error, the previous
version intact and readable, and the next sync (with space again) completes. (A full disk
while staging the downloads is test_rel_crash.py's, run into both targets.)

The crash points are drawn as in test_rel_crash.py (same seed, same rule: every seam once in a
seeded order, the phases taking turns, then seeded random ones up to 20 with --slow; the first 6
by default, two of each phase) from the seams of lake_sync_child.py; the occurrence is the drawn
fraction of how many times an uninterrupted sync (counted once per session by a child in
"count" mode) reaches the seam. As there, one run fails to parse in the crashed sync (so that
recording a failed run is a seam too); the next sync gets the part whole.

Right after the kill, before anything recovers: every partition folder holds exactly its files
of the current version, or (only while a published version was still being swapped in) of the
previous one: a folder-listing reader never sees half a day or two versions of it; and the lake
read through its manifest (`csload.connect(parquet=ROOT)`, which finds the files of a version
not yet swapped in where they are staged) holds exactly the runs its ledger says are loaded,
each whole.
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
from csload.lake.fs import LakeFS
from csload.lake.manifest import MANIFEST_DIR, STAGING_DIR, Manifest, manifest_name
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
    compare_lake,
    downloads_dir,
    lake_rows,
    lake_runs,
    manifest_of,
)
from tests.support.relkit import LIMITS, RETRY, Secrets, exception_texts, is_slow, world
from tests.support.syncref import SESSIONS_JOB, VIEWS_JOB, successful_runs

CHILD = "tests.support.lake_sync_child"
POINTS_DEFAULT = 6
SEAMS = {
    "download": ("download", "part-verified", "staged"),
    "write/swap": ("store-apply", "insert", "read-partitions", "write-table", "swap"),
    "manifest/ledger": ("record-failed", "ledger-export", "before-manifest", "after-manifest",
                        "cleanup", "discard"),
}
PHASE_OF = {seam: phase for phase, seams in SEAMS.items() for seam in seams}
COUNTED_AS = {"download": "part-verified"}
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


def previous_manifest(root: Path, current: Manifest) -> Manifest:
    if current.version <= 1:
        return Manifest.empty()
    lake = LakeFS.open(str(root))
    name = manifest_name(current.version - 1)
    data = lake.read_bytes(name)
    assert data is not None, f"{name} is gone: the previous version is not kept"
    return Manifest.from_bytes(data, name)


def partition_files(manifest: Manifest) -> dict[str, set[str]]:
    """'table/date=...' folder -> names of its files in this version."""
    out: dict[str, set[str]] = {}
    for table, entry in manifest.tables.items():
        for key, part in entry.partitions.items():
            out[f"{table}/date={key}"] = {f.rsplit("/", 1)[1] for f, _ in part.files}
    return out


def live_folders(root: Path) -> dict[str, set[str]]:
    """'table/date=...' folder -> names of the files in it, as a listing reader finds them."""
    out: dict[str, set[str]] = {}
    if not root.is_dir():
        return out
    for table in root.iterdir():
        if table.name.startswith("_") or not table.is_dir():
            continue
        for day in table.iterdir():
            out[f"{table.name}/{day.name}"] = {f.name for f in day.iterdir()}
    return out


def check_what_the_kill_left(root: Path, sim: Simulator) -> tuple[list[int], bool]:
    """(runs loaded in the current version, whether its files were all in place)."""
    current = manifest_of(root) if (root / MANIFEST_DIR).is_dir() else Manifest.empty()
    live = live_folders(root)
    now = partition_files(current)
    swapping = bool(current.txid) and (root / STAGING_DIR / current.txid).is_dir()
    if not swapping:
        assert live == now, "the live folders are not the current version's"
    else:
        # Killed between the manifest and the end of its swaps: each day is old or new.
        before = partition_files(previous_manifest(root, current))
        for folder in set(live) | set(now) | set(before):
            assert live.get(folder, set()) in (now.get(folder, set()),
                                               before.get(folder, set())), folder
    survived = [run for run, status in lake_runs(root).items() if status == "loaded"]
    in_place = all((root / f).is_file() for f in current.referenced())
    if current.version:
        # Through the manifest, the current version whole, swapped in or still staged.
        compare_lake(root, sim, survived).assert_exact(listing=not swapping)
    return survived, in_place


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
    survived, in_place = check_what_the_kill_left(root, simulator)
    assert bad_run not in survived

    simulator.faults.part_bodies.clear()
    report = csload.sync(settings, parquet=root)

    everything = successful_runs(simulator)
    acc = compare_lake(root, simulator, everything)
    record("crash", f"{seam} #{occurrence}", target=TARGET, phase=PHASE_OF[seam], seam=seam,
           occurrence=occurrence, of=count, runs_committed_before_kill=len(survived),
           files_in_place_after_kill=in_place,
           failed_recorded_before_kill=[r for r, s in left.items() if s == "failed"],
           **acc.fields())
    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert sorted([*survived, *(r.run_id for r in report.loaded)]) == sorted(everything)
    acc.assert_exact()
    assert set(lake_runs(root).values()) - {"source_failed"} == {"loaded"}
    assert_lake_tidy(root)
    secrets.scan([proc.stdout, proc.stderr], "the killed sync's output")
    secrets.check_storage(simulator)


def test_a_manifest_reader_right_after_a_kill_between_manifest_and_swaps(
    simulator: Simulator, child_env: dict[str, str], tmp_path: Path,
) -> None:
    root = tmp_path / "lake"
    proc = run_child(tmp_path, child_env, root, "after-manifest:2")
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    assert (root / STAGING_DIR / manifest_of(root).txid).is_dir()   # not swapped in yet
    survived = [run for run, status in lake_runs(root).items() if status == "loaded"]
    # Through the manifest only: a folder-listing reader still sees the old days here.
    compare_lake(root, simulator, survived).assert_exact(listing=False)


# --- a full disk -----------------------------------------------------------------------------

Snapshot = tuple[int, dict[str, tuple[set[str], list[dict[str, object]]]]]


def snapshot(root: Path) -> Snapshot:
    manifest = manifest_of(root)
    return manifest.version, {t: lake_rows(root, t) for t in sorted(manifest.tables)}


def assert_unchanged(root: Path, before: Snapshot) -> None:
    assert snapshot(root) == before, "the lake's previous version changed"
    assert live_folders(root) == partition_files(manifest_of(root))


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

        monkeypatch.setattr(store, "export_ledger", full)
        path = "simulated ENOSPC writing the ledger snapshot (no tmpfs)"

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, parquet=root, jobs=[VIEWS_JOB])

    text = str(raised.value)
    assert "No space left on device" in text and str(root) in text, text
    secrets.scan(exception_texts(raised.value), "the exception")
    # The previous version, as it was, before anything recovers (no lock is taken to read).
    assert_unchanged(root, before)
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
    assert_lake_tidy(root)


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
        assert_unchanged(root, before)
    else:
        assert result.exit_code == 3, result.output
        report = json.loads(result.stdout)
        failed = [r for r in report["runs"] if r["status"] == "failed"]
        assert failed and all("No space left on device" in r["message"] for r in failed)
        outcome = f"{len(failed)} runs failed: " + failed[0]["message"]
    secrets.scan([result.stdout, result.stderr], "the CLI output")
    filler.unlink()
    loaded_now = [run for run, status in lake_runs(root).items() if status == "loaded"]
    assert set(before[1]) <= set(manifest_of(root).tables)
    compare_lake(root, simulator, loaded_now).assert_exact()

    again = csload.sync(settings, parquet=root)

    acc = compare_lake(root, simulator, successful_runs(simulator))
    record("disk full", "lake and downloads on one disk (CLI)", target=TARGET, path=path,
           message=outcome, **acc.fields())
    assert again.exit_code == 0, [r.message for r in again.failed]
    acc.assert_exact()
    assert_lake_tidy(root)


def test_no_room_at_all_for_the_lake_lock_is_a_clear_cli_error(
    small_disk: Path | None, simulator: Simulator, sim_thread: ServerHandle,
    child_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """test_rel_crash's "2 KiB left" (no free page at all on a tmpfs), for a lake: the lock
    file (emptied when the last sync released it) cannot take its holder line. That line is
    only informative: the sync goes on and fails cleanly where it next needs room. (Not a cell
    of the matrix: it takes no part in the summary nor in the secrets scans.)"""
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
    assert set(before[1]) <= set(manifest_of(root).tables)
    # The same process can sync the lake again once there is room.
    again = csload.sync(settings, parquet=root)
    assert again.exit_code == 0 and first.exit_code == 0
    compare_lake(root, simulator, successful_runs(simulator)).assert_exact()
