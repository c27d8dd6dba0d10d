"""The lake's housekeeping settings (`lake_file_retention`, `lake_log_retention`, `lake_vacuum`
of `[limits]`), against the simulator over HTTP, locally and on the S3 test server:

* they are each table's Delta properties, from its creation, and again after they change;
* a sync's close deletes the files a batch replaced once they are older than the file
  retention (0 here, so at once), and keeps them otherwise or when the vacuum is off; a file
  no version names (another sync's, not yet committed) only once it is a day old;
* a table ahead of the ledger by a commit that changed no data (new properties committed, then
  a crash before the batch's commit) is taken as it is: the next sync commits after it.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from csload.api.models import Job
from csload.config import Limits, Settings, load_settings
from csload.errors import ConfigError, StoreError
from csload.simulator import Simulator
from csload.transfer.staged import StagedRun
from tests.support.lakeref import assert_rows_equal, expected, stage_runs
from tests.support.lakeutil import Lake

FILE_KEY = "delta.deletedFileRetentionDuration"
LOG_KEY = "delta.logRetentionDuration"
TABLES = ("sessions", "views")


def properties(lake: Lake, table: str) -> tuple[str | None, str | None]:
    config = lake.delta(table).metadata().configuration
    return config.get(FILE_KEY), config.get(LOG_KEY)


def assert_truth(lake: Lake, sim: Simulator, run_ids: list[int]) -> None:
    for table, rows in expected(sim, run_ids).items():
        assert_rows_equal(lake.rows(table), rows, table)
        assert lake.listed(table, "SELECT count(*) FROM t") == [(len(rows),)]


def views_job(staged: list[StagedRun]) -> Job:
    return next(s.job for s in staged if s.job.scope == "views")


async def synced(lake: Lake, settings: Settings, tmp_path: Path
                 ) -> tuple[Path, list[StagedRun], list[int]]:
    """Every run of the simulator staged (in tmp_path/parts) and applied to the new lake:
    the parts' folder, the staged runs and their ids."""
    folder = tmp_path / "parts"
    folder.mkdir()
    staged = await stage_runs(settings, folder)
    with lake.open() as store:
        store.apply(staged)
    return folder, staged, [s.run.run_id for s in staged]


async def test_the_settings_are_the_properties_and_the_vacuum_window(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    folder, staged, run_ids = await synced(lake, settings, tmp_path)
    for table in TABLES:   # the defaults: 7 and 30 days
        assert properties(lake, table) == ("interval 604800 seconds", "interval 2592000 seconds")

    # A re-run replaces a day: with the defaults, its older file stays (time travel).
    rerun = simulator.rerun(views_job(staged).job_id, date(2026, 11, 23))
    with lake.open() as store:
        store.apply(await stage_runs(settings, folder, [rerun]))
    run_ids.append(rerun)
    kept = set(lake.delta("views").file_uris())
    old_files = {f for f in lake.data_files() if f.startswith("views/date=")} - {
        f for f in lake.current_files() if f.startswith("views/")}
    assert old_files, "the replaced day's file is kept for the retention window"
    assert len(kept) == len(lake.snapshot().tables["views"].files_of())

    # Vacuum off, retention 0: the files stay, the properties change.
    off = Limits(lake_file_retention=0, lake_log_retention=3600, lake_vacuum=False)
    again = simulator.rerun(views_job(staged).job_id, date(2026, 11, 23))
    with lake.open(limits=off) as store:
        store.apply(await stage_runs(settings, folder, [again]))
    run_ids.append(again)
    assert properties(lake, "views") == ("interval 0 seconds", "interval 3600 seconds")
    # sessions had no batch: its properties change with its next commit
    assert properties(lake, "sessions") == ("interval 604800 seconds",
                                            "interval 2592000 seconds")
    replaced = {f for f in lake.data_files() if f.startswith("views/date=")} - set(
        lake.current_files())
    assert old_files < replaced
    assert_truth(lake, simulator, run_ids)

    # Vacuum on, retention 0: the close deletes every replaced file, and nothing current.
    now = Limits(lake_file_retention=0, lake_log_retention=3600)
    last = simulator.rerun(views_job(staged).job_id, date(2026, 11, 23))
    with lake.open(limits=now) as store:
        store.apply(await stage_runs(settings, folder, [last]))
    run_ids.append(last)
    current = set(lake.current_files())
    assert {f for f in lake.data_files() if "/date=" in f} == current
    assert_truth(lake, simulator, run_ids)


async def test_a_table_no_sync_writes_any_more_is_vacuumed_once_its_files_are_due(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    """Only the tables a sync wrote were vacuumed: those of a job suspended or replaced kept
    their replaced files for good (QA, 2026-12-07). A sync that writes only sessions now
    vacuums views too, once its newest commit is past the file retention (0 here)."""
    folder, staged, run_ids = await synced(lake, settings, tmp_path)
    views = views_job(staged)
    rerun = simulator.rerun(views.job_id, date(2026, 11, 23))
    with lake.open() as store:   # the defaults: the replaced file stays for 7 days
        store.apply(await stage_runs(settings, folder, [rerun]))
    run_ids.append(rerun)
    replaced = {f for f in lake.data_files() if f.startswith("views/date=")} - set(
        lake.current_files())
    assert replaced

    sessions = next(s.job for s in staged if s.job.scope == "sessions")
    again = simulator.rerun(sessions.job_id, date(2026, 11, 23))
    views_version = lake.delta("views").version()
    with lake.open(limits=Limits(lake_file_retention=0, lake_log_retention=3600)) as store:
        store.apply(await stage_runs(settings, folder, [again]))
    run_ids.append(again)
    assert not replaced & set(lake.data_files())
    assert {f for f in lake.data_files() if "/date=" in f} == set(lake.current_files())
    vacuumed = lake.delta("views").version()
    assert vacuumed > views_version   # the vacuum's own commits
    with lake.open(limits=Limits(lake_file_retention=0, lake_log_retention=3600)):
        pass   # nothing left to remove: passed by, no more commits
    assert lake.delta("views").version() == vacuumed
    assert_truth(lake, simulator, run_ids)


def test_a_table_no_sync_writes_is_vacuumed_in_the_day_after_its_files_are_due(
        local_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not at every sync for good: a vacuum that removes nothing commits nothing, and each
    one lists the table's files (an S3 LIST)."""
    from deltalake import write_deltalake

    import csload.lake.delta as delta

    path = str(Path(local_lake.root) / "t")
    write_deltalake(path, pa.table({"a": [1]}))
    table = DeltaTable(path)
    written = int(table.history(1)[0]["timestamp"]) / 1000
    lake_fs = local_lake.fs()
    for hours, due in ((47.9, False), (48.1, True), (120.0, True), (120.2, False)):
        monkeypatch.setattr(delta.time, "time", lambda h=hours: written + h * 3600)
        assert delta.vacuum_due(lake_fs, table, 48) is due, hours   # 2 days: 48 h to 120 h


async def test_a_commit_without_data_ahead_of_the_ledger_is_taken_as_it_is(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    """What a crash between the properties' commit and the batch's leaves: the next sync
    neither undoes it nor fails on it as on a second writer's commit."""
    folder = tmp_path / "parts"
    folder.mkdir()
    staged = await stage_runs(settings, folder)
    run_ids = [s.run.run_id for s in staged]
    last_views = [s for s in staged if s.job.scope == "views"][-1]
    with lake.open() as store:
        store.apply([s for s in staged if s is not last_views])
    recorded = lake.snapshot().state.tables["views"].version
    table = lake.delta("views")
    table.alter.set_table_properties({FILE_KEY: "interval 1 seconds"})
    assert table.version() == recorded + 1
    with lake.open() as store:
        [outcome] = store.apply([last_views])
    assert outcome.status == "loaded"
    assert lake.delta("views").metadata().configuration[FILE_KEY] == "interval 604800 seconds"
    assert lake.snapshot().state.tables["views"].version > recorded + 1
    assert_truth(lake, simulator, run_ids)


def test_the_settings_file_takes_durations_and_refuses_nonsense(tmp_path: Path) -> None:
    config = tmp_path / "csload.toml"
    env = {"CONTENTSQUARE_CLIENT_ID": "id", "CONTENTSQUARE_CLIENT_SECRET": "secret"}

    def limits_of(text: str) -> Limits:
        config.write_text(text)
        config.chmod(0o600)
        return load_settings(environ=env, config_file=config).limits

    got = limits_of('[limits]\nlake_file_retention = "12h"\nlake_log_retention = "90d"\n'
                    "lake_vacuum = false\n")
    assert (got.lake_file_retention, got.lake_log_retention, got.lake_vacuum) == (
        12 * 3600, 90 * 86400, False)
    assert Limits().lake_file_retention == 7 * 86400
    # In Python as in the file (docs/lake.md: "or csload.Limits(...)"): it refused "12h",
    # with a message suggesting "12h" (QA, 2026-12-08).
    typed = Limits(lake_file_retention="12h", lake_log_retention="90d",   # type: ignore[arg-type]
                   lock_wait="10m")   # type: ignore[arg-type]
    assert (typed.lake_file_retention, typed.lake_log_retention, typed.lock_wait) == (
        12 * 3600, 90 * 86400, 600)
    with pytest.raises(ConfigError, match="lake_file_retention: expected a duration"):
        Limits(lake_file_retention="soon")   # type: ignore[arg-type]
    for text, message in (
            ('lake_file_retention = "-1d"', "expected a duration"),
            ('lake_file_retention = "soon"', "expected a duration"),
            ('lake_log_retention = "10m"',   # the value as written, not 600.0
             'lake_log_retention must be a duration from 1h to 10 years ("7d", "12h" or '
             'seconds), got 10m'),
            ('lake_file_retention = "40d"',
             "lake_log_retention (30d) must be at least lake_file_retention (40d)"),
            ('lake_vacuum = "no"', "lake_vacuum must be true or false")):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            limits_of(f"[limits]\n{text}\n")


async def test_a_vacuum_leaves_a_file_no_version_names_until_it_is_a_day_old(
        local_lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    """Retention 0: the files a batch replaced go at once, but not a file no version names,
    which may be another sync's, written and not yet committed (a lake has no lock). Before,
    a sync's close deleted it, and the other sync's commit named a file that was gone. Once a
    day old it is a crashed sync's leftover, and the vacuum deletes it."""
    folder, staged, run_ids = await synced(local_lake, settings, tmp_path)
    root = Path(local_lake.root)
    some_file = root / next(f for f in local_lake.current_files() if f.startswith("views/"))
    pending = some_file.parent / "part-20261207T000000-0123456789ab-0.parquet"
    shutil.copyfile(some_file, pending)   # another sync's new file, its commit to come
    rel = str(pending.relative_to(root))

    now = Limits(lake_file_retention=0, lake_log_retention=3600)
    for age_hours in (0, 25):
        os.utime(pending, (time.time() - age_hours * 3600,) * 2)
        rerun = simulator.rerun(views_job(staged).job_id, date(2026, 11, 23))
        with local_lake.open(limits=now) as store:
            store.apply(await stage_runs(settings, folder, [rerun]))
        run_ids.append(rerun)
        on_disk = {f for f in local_lake.data_files() if "/date=" in f}
        current = set(local_lake.current_files())
        # The replaced files are gone at once either way.
        assert on_disk - current == ({rel} if age_hours == 0 else set()), on_disk - current
        assert_truth(local_lake, simulator, run_ids)


async def test_a_vacuum_that_fails_stops_the_others_of_the_close(
        local_lake: Lake, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3 endpoint that stopped answering held each table's vacuum for deltalake's 180 s
    of retries, after the sync had already failed (found by QA, 2026-12-07): the first
    failure now ends the housekeeping, with a warning, and the next sync vacuums."""
    import csload.lake.store as lake_store

    tried: list[str] = []

    def unreachable(lake: object, name: str, table: object, hours: int) -> list[str]:
        tried.append(name)
        raise StoreError("cannot reach the object storage")

    monkeypatch.setattr(lake_store, "vacuum", unreachable)
    await synced(local_lake, settings, tmp_path)   # sessions, views and the ledger written

    assert len(tried) == 1, tried


async def test_no_vacuum_after_a_failed_batch(
        local_lake: Lake, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage that failed a batch (an endpoint that stopped answering) fails the vacuum
    too: the close no longer tries, the next sync vacuums."""
    import csload.lake.store as lake_store

    tried: list[str] = []
    monkeypatch.setattr(lake_store, "vacuum", lambda lake, name, table, hours: tried.append(name))
    folder = tmp_path / "parts"
    folder.mkdir()
    staged = await stage_runs(settings, folder)
    first, rest = staged[:1], staged[1:]

    def unreachable(self: object) -> None:
        raise StoreError("cannot reach the object storage")

    with local_lake.open() as store:
        store.apply(first)   # a table written: its vacuum would be due at the close
        monkeypatch.setattr(lake_store.ParquetStore, "_publish", unreachable)
        with pytest.raises(StoreError):
            store.apply(rest)

    assert tried == []
