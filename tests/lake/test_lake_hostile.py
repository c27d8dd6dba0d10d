"""A lake's own files are hostile input (issue 16, part A): whoever can write the lake's storage
can craft its manifest, its transaction markers and what lies in `_csload/`. Each test crafts
the attack as the security review found it, on a lake a real `csload sync --parquet` made from
the simulator, and shows it refused with one clear line: no SQL from a file runs, nothing
outside the lake root is touched, no link inside `_csload/` is followed.

    test_hostile_manifest_sql_type_*       a column type carrying `COPY ... TO 'file'`
    test_hostile_manifest_*_escape*        a table name / partition key / txid with `..`
    test_hostile_marker_escapes_the_lake   an S3 transaction marker naming files outside it
    test_hostile_ledger_file_is_read_as_data  a ledger snapshot with values of the wrong type
    test_hostile_symlinked_* / hardlinked_lock the lock, the staging folder, a manifest as links
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import csload
from csload.cli import main
from csload.errors import StoreError
from csload.lake.fs import LakeFS
from csload.lake.manifest import manifest_name, manifest_versions, read_current
from csload.simulator import ServerHandle, SimConfig, Simulator
from tests.support.lakeutil import Lake
from tests.support.s3server import S3Server
from tests.support.simenv import sim_variables

Tamper = Callable[[dict[str, Any]], None]


@pytest.fixture
def sim_config() -> SimConfig:
    # Small: each test syncs once for real, then attacks the lake that sync made.
    return SimConfig(seed=7, days=2, sessions_per_day=40,
                     start_time=datetime(2026, 11, 25, 12, tzinfo=UTC))


@pytest.fixture
def sim_env(simulator: Simulator, sim_thread: ServerHandle) -> dict[str, str]:
    return sim_variables(simulator, sim_thread.base_url)


@pytest.fixture
def cli(sim_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., Result]:
    """`csload ...` in-process, in a folder without csload.toml; exceptions are caught so
    that a traceback would show as `result.exception`."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CONTENTSQUARE_"):
            monkeypatch.delenv(name)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=sim_env)

    return run


@pytest.fixture
def synced(cli: Callable[..., Result], tmp_path: Path) -> Path:
    """A local lake a real sync made."""
    root = tmp_path / "lake"
    result = cli("sync", "--parquet", str(root))
    assert result.exit_code == 0, result.output
    assert read_current(LakeFS.open(root)).tables
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the lake that no lake operation may touch."""
    folder = tmp_path / "outside"
    (folder / "date=2026-11-20").mkdir(parents=True)
    (folder / "date=2026-11-20" / "precious.txt").write_text("keep me")
    (folder / "precious.txt").write_text("keep me")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


def tamper_manifest(root: Path, change: Tamper) -> None:
    """Rewrite the lake's current manifest in place, as an attacker with write access would."""
    lake = LakeFS.open(root)
    path = lake.local_path(manifest_name(manifest_versions(lake)[-1]))
    obj = orjson.loads(path.read_bytes())
    change(obj)
    path.write_bytes(orjson.dumps(obj))


def assert_refused(result: Result, *words: str) -> None:
    """A sync that stopped before loading anything (exit 1), with one clear line and no
    traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


# --- a column type that carries SQL -----------------------------------------------------------

def _evil_table(columns: list[list[str]]) -> Tamper:
    def change(obj: dict[str, Any]) -> None:
        obj["tables"]["evil"] = {"columns": columns, "partitions": {}}
    return change


@pytest.mark.hostile("a lake manifest column type carrying `COPY ... TO 'file'`, opened by a sync",
                     "refused (the type is not one csload writes, lake called tampered), exit 1 "
                     "before loading; no file written, the lake unchanged")
def test_hostile_manifest_sql_type_in_sync(synced: Path, cli: Callable[..., Result],
                                           tmp_path: Path) -> None:
    # csload builds `CREATE TABLE "evil" ("a" <type>)` from the manifest when it opens a lake.
    pwned = tmp_path / "pwned-by-sync.csv"
    evil = f"INTEGER); COPY (SELECT 42 AS x) TO '{pwned}' (FORMAT csv); CREATE TABLE x (b INTEGER"
    tamper_manifest(synced, _evil_table([["a", evil]]))
    before = snapshot(synced)

    result = cli("sync", "--parquet", str(synced))

    assert_refused(result, "column type", "tampered")
    assert not pwned.exists()
    assert snapshot(synced) == before


@pytest.mark.hostile("the same crafted type, opened by `csload.connect(parquet=...)` and "
                     "`read_target_status`",
                     "StoreError naming the type; no SQL from the file runs, no file written")
def test_hostile_manifest_sql_type_in_connect(synced: Path, tmp_path: Path) -> None:
    # The issue's own example: the reader built `SELECT CAST(NULL AS <type>) AS "a" LIMIT 0`.
    pwned = tmp_path / "pwned-by-connect.csv"
    evil = f"INTEGER) AS a LIMIT 0; COPY (SELECT 42 AS x) TO '{pwned}' (FORMAT csv); SELECT (NULL"
    tamper_manifest(synced, _evil_table([["a", evil]]))

    with pytest.raises(StoreError, match=r"column type .* is not one csload writes"):
        csload.connect(parquet=str(synced))
    assert not pwned.exists()
    with pytest.raises(StoreError, match="column type"):
        csload.read_target_status(parquet=str(synced))
    assert not pwned.exists()


@pytest.mark.hostile("a manifest type that is valid SQL but not one csload writes (STRUCT)",
                     "refused: types come from a closed list")
def test_hostile_manifest_type_outside_the_allowlist_is_refused(synced: Path) -> None:
    # Not SQL, but not a type csload writes either: a closed list, not a blacklist.
    tamper_manifest(synced, _evil_table([["a", "STRUCT(a INTEGER)"]]))
    with pytest.raises(StoreError, match="STRUCT"):
        csload.connect(parquet=str(synced))


@pytest.mark.hostile("a lake ledger snapshot with text where run ids belong (`1; DROP TABLE "
                     "views`)",
                     "read as data and cast to csload's types: the ledger is called damaged, "
                     "connect and sync refuse it")
def test_hostile_ledger_file_is_read_as_data(synced: Path, cli: Callable[..., Result]) -> None:
    # A ledger snapshot whose run ids are text: cast to csload's own types, never trusted.
    manifest = read_current(LakeFS.open(synced))
    assert manifest.ledger is not None
    runs = synced / manifest.ledger / "_csload_runs.parquet"
    pq.write_table(pa.table({"run_id": ["1; DROP TABLE views"], "status": ["loaded"]}), runs)

    with pytest.raises(StoreError, match=r"ledger file .*_csload_runs.parquet is damaged"):
        csload.connect(parquet=str(synced))
    assert_refused(cli("sync", "--parquet", str(synced)), "_csload_runs.parquet is damaged")


# --- names and keys that lead out of the root -------------------------------------------------

def _first_partition(obj: dict[str, Any]) -> tuple[str, str]:
    table = sorted(obj["tables"])[0]
    return table, sorted(obj["tables"][table]["partitions"])[0]


def _escape_by_table(obj: dict[str, Any]) -> None:
    # The swap of a "touched" partition of a table the version does not hold moved the live
    # folder `<table>/date=<key>` into staging, and recovery deleted it.
    obj["touched"].append(["../outside", "2026-11-20"])


def _escape_by_key(obj: dict[str, Any]) -> None:
    # `<table>/date=<day>/../../../outside` is the folder beside the lake.
    table, key = _first_partition(obj)
    obj["touched"].append([table, f"{key}/../../../outside"])


def _escape_by_file(obj: dict[str, Any]) -> None:
    table, key = _first_partition(obj)
    obj["tables"][table]["partitions"][key]["files"].append(["../outside/precious.txt", 7])


def _escape_by_txid(obj: dict[str, Any]) -> None:
    obj["txid"] = "../../../outside"
    obj["ledger"] = "_csload/ledger/../../../outside"


ESCAPES = {"table name": _escape_by_table, "partition key": _escape_by_key,
           "file path": _escape_by_file, "txid": _escape_by_txid}


@pytest.mark.parametrize("how", ESCAPES)
@pytest.mark.hostile("a manifest table name, partition key, file path or txid with `..` (recovery"
                     " once moved and deleted a folder outside the lake)",
                     "refused as tampered by sync and connect; nothing outside the lake root "
                     "touched")
def test_hostile_manifest_path_escape(synced: Path, outside: Path, cli: Callable[..., Result],
                                      how: str) -> None:
    tamper_manifest(synced, ESCAPES[how])
    # Recovery runs the swaps of a version whose staging folder is still there.
    txid = read_current_txid(synced)
    (synced / "_csload" / "staging" / txid).mkdir(parents=True, exist_ok=True)
    before = snapshot(outside)

    result = cli("sync", "--parquet", str(synced))

    assert_refused(result, "tampered")
    with pytest.raises(StoreError, match="tampered"):
        csload.connect(parquet=str(synced))
    assert snapshot(outside) == before


def read_current_txid(root: Path) -> str:
    """The txid as written in the current manifest (without checking it: it may be crafted)."""
    lake = LakeFS.open(root)
    path = lake.local_path(manifest_name(manifest_versions(lake)[-1]))
    txid = orjson.loads(path.read_bytes())["txid"]
    return txid if "/" not in txid else "x"


@pytest.mark.hostile("an S3 transaction marker listing files of a neighbouring prefix to delete",
                     "refused as tampered; the neighbour's files kept")
def test_hostile_marker_escapes_the_lake(s3_server: S3Server, tmp_path: Path) -> None:
    # On S3 the next sync deletes what a marker lists; a crafted one named another prefix.
    lake = Lake.s3(s3_server, "hostile-marker")
    neighbour = LakeFS.open(lake.root + "-neighbour", lake.options, env={})
    neighbour.write_bytes("views/date=2026-11-20/data.parquet", b"someone else's data")
    fs = lake.fs()
    fs.write_bytes("_csload/txn/20261125T120000-0123456789ab.json", orjson.dumps({
        "txid": "20261125T120000-0123456789ab", "version": 1, "obsolete": [],
        "uploads": [f"../{neighbour.base.split('/', 1)[1]}/views/date=2026-11-20/data.parquet"],
    }))

    with pytest.raises(StoreError, match="tampered"):
        lake.open()
    assert neighbour.read_bytes("views/date=2026-11-20/data.parquet") == b"someone else's data"


# --- links inside _csload/ ---------------------------------------------------------------------

@pytest.mark.hostile("the lake lock replaced by a symbolic link (to a file, or dangling)",
                     "refused, exit 1; the linked file neither truncated nor created")
def test_hostile_symlinked_lock(synced: Path, outside: Path, cli: Callable[..., Result]) -> None:
    lock = synced / "_csload" / "lock"
    assert lock.stat().st_mode & 0o777 == 0o600   # the sync made it private
    target = outside / "precious.txt"
    lock.unlink()
    lock.symlink_to(target)

    result = cli("sync", "--parquet", str(synced))

    assert_refused(result, "symbolic link")
    assert target.read_text() == "keep me"   # neither truncated nor overwritten

    # A dangling link: the lock must not create the file it points to either.
    lock.unlink()
    lock.symlink_to(outside / "created-by-lock")
    assert_refused(cli("sync", "--parquet", str(synced)), "symbolic link")
    assert not (outside / "created-by-lock").exists()


@pytest.mark.hostile("the lake lock replaced by a hard link to another file",
                     "refused (link count checked); the file unchanged")
def test_hostile_hardlinked_lock(synced: Path, outside: Path, cli: Callable[..., Result]
                                 ) -> None:
    # A hard link is no symbolic link: O_NOFOLLOW lets it through, the link count does not.
    lock = synced / "_csload" / "lock"
    target = outside / "precious.txt"
    lock.unlink()
    os.link(target, lock)

    assert_refused(cli("sync", "--parquet", str(synced)), "hard links")
    assert target.read_text() == "keep me"


@pytest.mark.hostile("`_csload/staging` linked to a folder outside the lake",
                     "refused; the folder outside untouched")
def test_hostile_symlinked_staging(synced: Path, outside: Path, cli: Callable[..., Result]
                                   ) -> None:
    # Recovery empties `_csload/staging`: through a link it emptied the folder linked to.
    staging = synced / "_csload" / "staging"
    if staging.exists():
        staging.rmdir()
    staging.symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)

    result = cli("sync", "--parquet", str(synced))

    assert_refused(result, "symbolic link")
    assert snapshot(outside) == before


@pytest.mark.hostile("a manifest that is a symbolic link to a file elsewhere",
                     "refused by sync and connect")
def test_hostile_symlinked_manifest(synced: Path, tmp_path: Path, cli: Callable[..., Result]
                                    ) -> None:
    # A manifest linked to a file elsewhere (one the attacker cannot place in the lake, say).
    lake = LakeFS.open(synced)
    current = lake.local_path(manifest_name(manifest_versions(lake)[-1]))
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(current.read_bytes())
    current.unlink()
    current.symlink_to(elsewhere)

    assert_refused(cli("sync", "--parquet", str(synced)), "symbolic link")
    with pytest.raises(StoreError, match="symbolic link"):
        csload.connect(parquet=str(synced))
