"""A lake an older csload wrote (the manifest format) upgraded to Delta tables, in place.

The lake is tests/lake/data/legacy-lake/, made by that csload itself (make_legacy_lake.py
there says how and what it holds: ids above 2^63, arrays, timestamps, rows without a date, a
re-run that replaced a day, narrow integer types, failed and expired runs). Its rows are read
"before" straight from its files with DuckDB, following its manifest with plain JSON (not with
csload's reader of it), and compared with what `csload.connect(parquet=...)` reads after.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from click.testing import CliRunner

import csload.lake_upgrade.convert as upgrade_module
from csload.cli.lake import lake as lake_cli
from csload.errors import StoreError, StoreLockedError
from csload.lake.layout import LEGACY_GUARD
from csload.lake.store import ParquetStore
from csload.lake_upgrade.convert import open_store, upgrade
from csload.load.sqltext import quote_ident
from csload.target import Target
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run

FIXTURE = Path(__file__).parent / "data" / "legacy-lake"
OLD_FORMAT = ("_csload/manifest/", "_csload/ledger/", "_csload/txn/", "_csload/staging/",
              "_csload/lock")
LEDGER = ("meta", "jobs", "runs", "parts", "tombstones")
Rows = dict[str, list[tuple[Any, ...]]]


def fixture_files() -> list[str]:
    return sorted(str(p.relative_to(FIXTURE)) for p in FIXTURE.rglob("*") if p.is_file())


def current_manifest() -> dict[str, Any]:
    names = sorted((FIXTURE / "_csload" / "manifest").glob("*.json"))
    manifest: dict[str, Any] = json.loads(names[-1].read_bytes())
    return manifest


def install(lake: Lake) -> None:
    """Put the older lake's files where `lake` is."""
    if lake.kind == "local":
        shutil.copytree(FIXTURE, lake.root)
    else:
        lake.fs().upload_files([(FIXTURE / rel, rel) for rel in fixture_files()])


def older_rows() -> Rows:
    """Each table's rows, read from the files the fixture's current manifest names."""
    manifest = current_manifest()
    con = duckdb.connect()
    out: Rows = {}
    for name, table in manifest["tables"].items():
        files = [str(FIXTURE / f) for p in table["partitions"].values() for f, _ in p["files"]]
        cols = ", ".join(quote_ident(n) for n, _ in table["columns"])
        out[name] = sorted(con.execute(
            f"SELECT {cols} FROM read_parquet({files!r}, hive_partitioning = false)"  # noqa: S608
        ).fetchall(), key=repr)
    return out


def older_ledger() -> Rows:
    folder = FIXTURE / current_manifest()["ledger"]
    con = duckdb.connect()
    return {name: sorted(con.execute(
        "SELECT COLUMNS(*)::VARCHAR FROM read_parquet(?)",
        [str(folder / f"_csload_{name}.parquet")]).fetchall()) for name in LEDGER}


def lake_rows(lake: Lake) -> Rows:
    manifest = current_manifest()
    con = lake.connect()
    try:
        return {name: sorted(con.execute(
            f"SELECT {', '.join(quote_ident(n) for n, _ in t['columns'])} "  # noqa: S608
            f"FROM {quote_ident(name)}").fetchall(), key=repr)
            for name, t in manifest["tables"].items()}
    finally:
        con.close()


def lake_ledger(lake: Lake) -> Rows:
    con = lake.connect()
    try:
        return {name: sorted(con.execute(
            f"SELECT COLUMNS(*)::VARCHAR FROM _csload.{name}").fetchall())  # noqa: S608
            for name in LEDGER}
    finally:
        con.close()


def column_types(lake: Lake, table: str) -> dict[str, str]:
    con = lake.connect()
    try:
        return {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()}
    finally:
        con.close()


def assert_upgraded(lake: Lake) -> None:
    """Every row and ledger row of the older lake; nothing of the older format left; every
    data file one of the Delta tables' own."""
    assert lake_rows(lake) == older_rows()
    assert lake_ledger(lake) == older_ledger()
    files = lake.files()
    # Only the guard against an older csload (csload.lake.layout.LEGACY_GUARD).
    assert [f for f in files if f.startswith(OLD_FORMAT)] == [LEGACY_GUARD]
    old_data = {f for f in fixture_files() if not f.startswith("_csload/")}
    assert not old_data & set(files)
    parquet = {f for f in lake.data_files() if "/_delta_log/" not in f}
    assert parquet == set(lake.current_files())
    assert set(lake.snapshot().tables) == {"views", "sessions"}


@pytest.fixture
def older(lake: Lake) -> Lake:
    install(lake)
    return lake


@pytest.fixture
def older_local(local_lake: Lake) -> Lake:
    install(local_lake)
    return local_lake


def run_upgrade(lake: Lake) -> bool:
    return upgrade(lake.root, lake.options, env={})


# --- the upgrade -----------------------------------------------------------------------------


def test_upgrade_keeps_every_row_and_the_ledger(older: Lake) -> None:
    before = older_rows()
    assert max(r[0] for r in before["views"]) > 2**63   # the hard values are there
    assert any(r[2] is None for r in before["sessions"])   # rows without a session_date

    assert run_upgrade(older) is True

    assert_upgraded(older)
    # the older narrow integers are BIGINT now, their values exact
    types = column_types(older, "sessions")
    assert types["session_number"] == "BIGINT" and types["device_id"] == "BIGINT"
    assert types["app_events_event_type"] == "BIGINT[]"
    assert types["session_id"] == "UBIGINT" and types["session_time"] == "TIMESTAMP"
    con = older.connect()
    assert con.execute("SELECT min(device_id), max(session_number), max(is_excludable), "
                       "max(session_duration_msec) FROM sessions").fetchone() == (
        -128, 65535, 255, 2**32 - 1)
    con.close()
    # the partition of rows without a date is a Delta partition like the others
    assert "__HIVE_DEFAULT_PARTITION__" in older.snapshot().tables["sessions"].files
    # a Delta reader of the logs counts the same rows
    for table, rows in before.items():
        assert older.listed(table, "SELECT count(*) FROM t") == [(len(rows),)]
    status = older.status()
    assert {t.table: t.rows for t in status.tables} == {t: len(r) for t, r in before.items()}
    assert {j.job_id for j in status.jobs} == {1, 2}

    assert run_upgrade(older) is False   # nothing of the older format left
    assert_upgraded(older)


def test_syncs_after_the_upgrade_follow_the_older_ledger(older_local: Lake, writer: Writer
                                                         ) -> None:
    assert run_upgrade(older_local)
    views = job(1, fields=["session_id", "view_number", "view_time", "url"])
    day2 = date(2026, 11, 21)
    with older_local.open() as store:
        # run 12 was loaded by the older csload: skipped; its re-run of the 21st replaces the
        # day the older run 11 loaded (the window rule reads the upgraded partition stats)
        again = store.apply([writer.staged(views, run(12, 1, date(2026, 11, 20)), [[]])])
        assert [o.status for o in again] == ["skipped"]
        rerun = writer.staged(views, run(14, 1, day2, finished_hours=40), [[
            {"session_id": 7, "view_number": 1, "view_time": datetime(2026, 11, 21, 9),
             "url": "new day 2"}]])
        [outcome] = store.apply([rerun])
        assert outcome.status == "loaded"
    con = older_local.connect()
    assert con.execute("SELECT session_id, url, _run_id FROM views WHERE _date = ?",
                       [day2]).fetchall() == [(7, "new day 2", 14)]
    assert con.execute("SELECT count(*) FROM views WHERE _date = '2026-11-20'").fetchone() == (
        len([r for r in older_rows()["views"] if r[-2] == date(2026, 11, 20)]),)
    failed = con.execute("SELECT run_id, status FROM _csload.runs WHERE status <> 'loaded' "
                         "ORDER BY run_id").fetchall()
    assert failed == [(13, "failed"), (22, "expired")]


def test_a_local_file_still_staged_by_a_crashed_swap_is_read(older_local: Lake) -> None:
    # The older csload crashed between writing its manifest and swapping the day's folder in.
    manifest = current_manifest()
    [day] = manifest["tables"]["views"]["partitions"]["2026-11-20"]["files"]
    live = Path(older_local.root) / day[0]
    staged = Path(older_local.root) / "_csload" / "staging" / manifest["txid"] / day[0]
    staged.parent.mkdir(parents=True)
    live.rename(staged)

    assert run_upgrade(older_local)

    assert_upgraded(older_local)


def test_a_syncs_open_upgrades_the_lake(older: Lake) -> None:
    with open_store(older.root, storage_options=older.options, env={}) as store:
        assert set(store.snapshot.tables) == {"views", "sessions"}
    assert_upgraded(older)


def test_the_first_sync_upgrades_the_lake(older: Lake) -> None:
    # Through the sync's own opening of its target (csload.target.Target.open).
    store = Target.of(db=None, parquet=older.root, storage_options=older.options).open()
    store.close()
    assert_upgraded(older)


def test_a_lake_without_the_older_format_is_left_alone(local_lake: Lake, writer: Writer
                                                       ) -> None:
    assert run_upgrade(local_lake) is False
    assert not Path(local_lake.root).exists()   # nothing created
    with local_lake.open() as store:
        store.apply([writer.staged(job(1, fields=["session_id", "url"]),
                                   run(10, 1, date(2026, 11, 20)), [[{"session_id": 1}]])])
    files = local_lake.files()
    assert run_upgrade(local_lake) is False
    assert local_lake.files() == files


def test_csload_lake_upgrade_command(older_local: Lake) -> None:
    runner = CliRunner()
    result = runner.invoke(lake_cli, ["upgrade", older_local.root])
    assert result.exit_code == 0, result.output
    assert "upgraded to Delta tables" in result.output
    assert_upgraded(older_local)
    again = runner.invoke(lake_cli, ["upgrade", older_local.root])
    assert again.exit_code == 0 and "nothing" in again.output
    # A mistyped path said "nothing to upgrade", exit 0.
    missing = runner.invoke(lake_cli, ["upgrade", f"{older_local.root}-typo"])
    assert missing.exit_code == 1, missing.output
    assert f"no csload lake at {older_local.root}-typo" in missing.output


# --- interrupted upgrades --------------------------------------------------------------------


def crash(*_: Any, **__: Any) -> Any:
    raise RuntimeError("killed")


def stored(lake: Lake) -> dict[str, bytes]:
    fs = lake.fs()
    return {f: fs.read_bytes(f) or b"" for f in lake.files()
            if not f.startswith("_csload/lock")}


def test_crash_before_the_ledger_commit_leaves_the_older_lake(
        older: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    before = stored(older)
    with monkeypatch.context() as patch:
        # The tables are committed, the ledger is not.
        patch.setattr(ParquetStore, "_commit_ledger", crash)
        with pytest.raises(RuntimeError, match="killed"):
            run_upgrade(older)
    assert older.delta("views").version() == 0   # the interrupted upgrade's table commit
    assert not older.snapshot().exists
    after = stored(older)
    assert {f: b for f, b in after.items() if f in before} == before   # the older lake, whole
    new = [f for f in after if f not in before]
    assert new and all("/_delta_log/" in f or "/part-" in f for f in new)

    assert run_upgrade(older) is True   # the next open upgrades it

    assert_upgraded(older)


@pytest.mark.parametrize("moment", ["right after the commit", "during the removal"])
def test_crash_after_the_ledger_commit_is_finished_by_the_next_open(
        older: Lake, monkeypatch: pytest.MonkeyPatch, moment: str) -> None:
    with monkeypatch.context() as patch:
        if moment == "right after the commit":
            patch.setattr(upgrade_module, "_remove_legacy", crash)
        else:
            real = upgrade_module._delete_tree

            def delete_tree(lake: Any, rel: str) -> None:
                if rel == "_csload/manifest":
                    raise RuntimeError("killed")
                real(lake, rel)

            patch.setattr(upgrade_module, "_delete_tree", delete_tree)
        with pytest.raises(RuntimeError, match="killed"):
            run_upgrade(older)
    # the upgrade counts: readers see the Delta tables, exactly
    assert lake_rows(older) == older_rows()
    assert any(f.startswith("_csload/manifest/") for f in older.files())

    assert run_upgrade(older) is True   # the next open finishes it

    assert_upgraded(older)


# --- the older csload's lock, and damaged or crafted older files ---------------------------


@pytest.fixture
def held_flock(older_local: Lake) -> Iterator[None]:
    fd = os.open(Path(older_local.root) / "_csload" / "lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)   # as a running sync of the older csload holds it
    try:
        yield
    finally:
        os.close(fd)


@pytest.mark.usefixtures("held_flock")
def test_a_running_sync_of_the_older_csload_is_not_disturbed(older_local: Lake) -> None:
    before = stored(older_local)
    with pytest.raises(StoreLockedError, match="being synced or upgraded by another process"):
        run_upgrade(older_local)
    assert stored(older_local) == before


def test_a_live_s3_lease_of_the_older_csload_is_respected(s3_lake: Lake) -> None:
    install(s3_lake)
    lease = {"host": "elsewhere", "pid": 4242, "owner": "someone",
             "expires": (datetime.now(UTC) + timedelta(minutes=2)).isoformat()}
    s3_lake.fs().write_bytes("_csload/lock.json", orjson.dumps(lease))
    with pytest.raises(StoreLockedError, match="elsewhere"):
        run_upgrade(s3_lake)
    assert not s3_lake.snapshot().exists
    lease["expires"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    s3_lake.fs().write_bytes("_csload/lock.json", orjson.dumps(lease))
    assert run_upgrade(s3_lake)   # an expired lease is taken over, as the older csload did
    assert_upgraded(s3_lake)


Tamper = Callable[[dict[str, Any], Path], None]


def _sql_type(manifest: dict[str, Any], _: Path) -> None:
    columns = manifest["tables"]["views"]["columns"]
    columns[3][1] = "VARCHAR); COPY (SELECT 42) TO 'pwned.csv' (FORMAT csv); SELECT (1"


def _escaping_path(manifest: dict[str, Any], _: Path) -> None:
    part = manifest["tables"]["views"]["partitions"]["2026-11-20"]
    part["files"][0][0] = "views/date=2026-11-20/../../../outside.parquet"


def _wrong_counts(manifest: dict[str, Any], _: Path) -> None:
    part = manifest["tables"]["views"]["partitions"]["2026-11-21"]
    part["runs"] = {"11": 3}
    part["rows"] = 3


def _file_of_another_table(manifest: dict[str, Any], root: Path) -> None:
    views = manifest["tables"]["views"]["partitions"]["2026-11-21"]["files"][0][0]
    sessions = manifest["tables"]["sessions"]["partitions"]["2026-11-21"]["files"][0][0]
    shutil.copyfile(root / sessions, root / views)


def _undated_lineage(manifest: dict[str, Any], _: Path) -> None:
    columns = manifest["tables"]["views"]["columns"]
    manifest["tables"]["views"]["columns"] = [c for c in columns if c[0] != "_date"]


@pytest.mark.hostile("a manifest of the older format crafted or damaged (an SQL type, a path "
                     "out of the lake, row counts that do not match the files, a file of "
                     "another table, a missing lineage column), met by the upgrade",
                     "StoreError naming what and where; the older lake unchanged, no Delta "
                     "table created, no SQL from the file runs")
@pytest.mark.parametrize(("tamper", "message"), [
    (_sql_type, "column type"), (_escaping_path, "data file"),
    (_wrong_counts, "rows of run 11 in partition 2026-11-21"),
    (_file_of_another_table, "cannot be read as its manifest says"),
    (_undated_lineage, "lineage column _date")])
def test_damaged_older_files_are_refused_before_any_change(
        older_local: Lake, tamper: Tamper, message: str, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    root = Path(older_local.root)
    monkeypatch.chdir(root.parent)
    path = sorted((root / "_csload" / "manifest").glob("*.json"))[-1]
    manifest = json.loads(path.read_bytes())
    tamper(manifest, root)
    path.write_bytes(orjson.dumps(manifest))
    before = stored(older_local)

    with pytest.raises(StoreError, match=message):
        run_upgrade(older_local)

    assert stored(older_local) == before
    assert not (root.parent / "pwned.csv").exists()
    assert not [f for f in older_local.files() if "/_delta_log/" in f]
