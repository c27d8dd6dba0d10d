"""Upgrading a lake an older csload wrote (the manifest format, read by
csload.lake_upgrade.older_format) to Delta tables, in place: `upgrade` (a sync's first open,
through `open_store`, and `csload lake upgrade ROOT`).

`upgrade_lake`, under the older csload's own lock (so neither a sync of it nor a second
upgrade runs meanwhile):

1. removes what an earlier, interrupted upgrade committed to tables (their logs and the files
   those logs add; never a file of the older format, which may lie in the same folders);
2. loads the current version's ledger snapshot into a work database (csload.lake.store), and
   each table's rows from that version's files, with the older columns (narrow integers
   widened to BIGINT: older_format.column_type), checking the rows of every partition and
   run against the manifest;
3. publishes them the normal way (`ParquetStore._publish`): every partition rewritten into
   new files, one commit per table, then the ledger's commit, the commit point;
4. removes the older format (`finish_upgrade`): the data files its records name, its
   manifests, markers, staging folders, ledger snapshots and lock files; the manifest folder
   last, so that a crash in between leaves it for the next open to finish.

Before the ledger's commit the older lake is untouched and still the lake (readers of the
older csload keep working; an upgrade can start again); after it, the older files are garbage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
from deltalake import DeltaTable

from csload.config import Limits
from csload.errors import LakeConflict, StoreError, StoreLockedError
from csload.lake.delta import open_table
from csload.lake.fs import LakeFS
from csload.lake.layout import (
    LEDGER_TABLE_DIR,
    LOG_DIR,
    partition_key,
    shown,
)
from csload.lake.ledger import import_ledger
from csload.lake.recovery import logged_files, table_folders
from csload.lake.snapshot import (
    LakeSnapshot,
    guard_from_older_csload,
    has_older_format,
    read_snapshot,
)
from csload.lake.store import ParquetStore, WorkDatabase, open_work
from csload.lake.work import create_table
from csload.lake_upgrade import older_format
from csload.load.ledger import SCHEMA_VERSION
from csload.load.sqltext import quote_ident
from csload.scratch import OwnFolder, fresh_folder

log = logging.getLogger("csload.lake")
# An upgrade's scratch folder (its work database), as a sync's (csload.lake.store).
UPGRADE_SCRATCH_PREFIX = "csload-upgrade-"

# How long an S3 lease of this upgrade holds without being renewed (renewed before each
# table and before the ledger's commit); the older csload renewed its own every 30 s.
LEASE_SECONDS = 600


def upgrade(root: str | Path, storage_options: Mapping[str, str] | None = None, *,
            env: Mapping[str, str] | None = None, scratch_dir: str | Path | None = None,
            limits: Limits | None = None) -> bool:
    """Upgrade the lake at `root` from the older manifest format to Delta tables, or finish
    removing the older files an interrupted upgrade left; True if it did either, False for a
    lake with nothing of the older format (only its manifest folder is looked for).
    `scratch_dir`: where the work database spills (default: the system's temporary folder);
    `limits`: the sync's."""
    lake = LakeFS.open(root, storage_options, env)
    lake.check_usable()
    if not has_older_format(lake):
        return False
    if finish_upgrade(lake):
        return True
    with lake.errors("create a scratch folder"):
        scratch = fresh_folder(scratch_dir, UPGRADE_SCRATCH_PREFIX)   # killed upgrades' go
    try:
        return upgrade_lake(lake, scratch, limits)
    finally:
        scratch.remove()


def open_store(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
               scratch_dir: str | Path | None = None, env: Mapping[str, str] | None = None,
               limits: Limits | None = None) -> ParquetStore:
    """`ParquetStore.open`, once a lake an older csload wrote is upgraded: a sync's open
    (csload.target). The store cannot do it itself: this module is built on it."""
    upgrade(root, storage_options, env=env, scratch_dir=scratch_dir, limits=limits)
    return ParquetStore.open(root, storage_options=storage_options, scratch_dir=scratch_dir,
                             env=env, limits=limits)


def upgrade_lake(lake: LakeFS, scratch: OwnFolder, limits: Limits | None = None) -> bool:
    """Upgrade the lake if it has no Delta ledger and a version of the older format (see the
    module docstring); True if it did. StoreLockedError while a sync of the older csload (or
    another upgrade) holds the lake; StoreError for older files that are damaged or were
    tampered with, before anything is changed."""
    if _has_ledger(lake):
        return False
    with _legacy_lock(lake) as lock:
        if _has_ledger(lake):   # another upgrade was committed meanwhile
            return False
        manifest = older_format.read_current(lake)
        if manifest is None:
            # Only leftovers of an older sync that never published: nothing to carry over.
            _remove_legacy(lake)
            return False
        _drop_unrecorded(lake, older_format.known_files(lake))
        ledger = older_format.read_ledger(lake, manifest)
        work = open_work(lake, LakeSnapshot(None), scratch.path, limits)
        try:
            import_ledger(work.con, lake, ledger)
            _check_schema_version(lake, work.con)
            for name, table in sorted(manifest.tables.items()):
                lock.renew()
                _load_table(lake, work, manifest, name, table)
            _UpgradeStore(lake, scratch, LakeSnapshot(None), work, limits or Limits(),
                          lock)._publish()
        finally:
            work.close()
    log.warning("lake %s: upgraded from the older manifest format (version %s) to Delta "
                "tables", lake.root, manifest.version)
    finish_upgrade(lake)
    return True


def finish_upgrade(lake: LakeFS) -> bool:
    """Remove what is left of the older format once the lake has a Delta ledger (an upgrade
    was committed, then interrupted); True if there was anything. Its files are garbage then:
    the ledger names only the Delta tables' files, and those are never removed here."""
    if not has_older_format(lake) or not _has_ledger(lake):
        return False
    _remove_legacy(lake)
    guard_from_older_csload(lake)
    return True


class _UpgradeStore(ParquetStore):
    """The normal publish, which commits the ledger only while this upgrade still holds the
    older csload's lock (an S3 lease can be taken over once expired)."""

    def __init__(self, lake: LakeFS, scratch: OwnFolder, snapshot: LakeSnapshot,
                 work: WorkDatabase, limits: Limits, lock: _LegacyLock) -> None:
        super().__init__(lake, scratch, snapshot, work, limits)
        self._lock = lock

    def _commit_ledger(self, rows: Any, batch: int, txid: str) -> DeltaTable:
        self._lock.renew()
        if _has_ledger(self.lake):
            raise LakeConflict(f"lake {self.root}: another process upgraded it meanwhile; "
                               "nothing of this upgrade was committed")
        return super()._commit_ledger(rows, batch, txid)


# --- the steps -------------------------------------------------------------------------------


def _has_ledger(lake: LakeFS) -> bool:
    """Whether the lake has a Delta ledger (a committed upgrade, or a lake made as one)."""
    return open_table(lake, LEDGER_TABLE_DIR) is not None


def _drop_unrecorded(lake: LakeFS, older: set[str]) -> None:
    """Remove the Delta tables an interrupted upgrade committed (no ledger names any table
    yet): the files their logs add, then the logs. A file of the older format (`older`) is
    never removed: no log of csload names one."""
    for name in table_folders(lake):
        files = logged_files(lake, name)
        kept = [f for f in files if f in older]
        if kept:
            log.warning("lake %s: the log of table %s names %s file(s) of the older "
                        "format; they are kept", lake.root, name, len(kept))
        files = [f for f in files if f not in older]
        if _has_ledger(lake):   # the last check before deleting: see _LegacyLock
            raise LakeConflict(f"lake {lake.root}: another process upgraded it meanwhile")
        lake.delete_files(files)
        lake.delete_dir(f"{name}/{LOG_DIR}")
        log.warning("lake %s: removed table %s, which an interrupted upgrade created",
                    lake.root, name)


def _check_schema_version(lake: LakeFS, con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute("SELECT TRY_CAST(value AS INTEGER) FROM _csload.meta "
                      "WHERE key = 'schema_version'").fetchone()
    if row is not None and row[0] is None:
        raise StoreError(f"lake {lake.root}: the older ledger's schema version is not a "
                         "number (damaged or tampered with)")
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise StoreError(f"lake {lake.root} has a ledger of schema version {row[0]}, newer "
                         f"than this csload understands ({SCHEMA_VERSION}): upgrade csload")


def _load_table(lake: LakeFS, work: WorkDatabase, manifest: older_format.LegacyManifest,
                name: str, table: older_format.LegacyTable) -> None:
    """Create the table in the work database with the older columns, insert the rows of the
    version's files, and mark every partition as read in (the publish rewrites them all)."""
    con = work.con
    # Names and types are checked by csload.lake_upgrade.older_format (a closed list of types).
    create_table(con, name, table.columns)
    files = [older_format.current_file(lake, manifest, f) for f in table.files]
    select = ", ".join(f"CAST(s.{quote_ident(n)} AS {t}) AS {quote_ident(n)}"
                       for n, t in table.columns)
    try:
        if files:
            with work.reads.source(con, files) as src:
                con.execute(f"INSERT INTO {quote_ident(name)} BY NAME "  # noqa: S608
                            f"SELECT {select} FROM {src} AS s")
        counts = con.execute(
            f"SELECT _date, CAST(_run_id AS VARCHAR), count(*) FROM {quote_ident(name)} "  # noqa: S608
            "GROUP BY ALL").fetchall()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise StoreError(f"lake {lake.root}: the files of table {name} (version "
                         f"{manifest.version} of the older format) cannot be read as its "
                         f"manifest says ({first!r}); nothing was changed") from None
    _check_rows(lake, manifest, name, table, counts)
    work.reads.loaded[name] = set(table.partitions)
    work.reads.touched.add(name)   # to be published


def _check_rows(lake: LakeFS, manifest: older_format.LegacyManifest, name: str,
                table: older_format.LegacyTable, counts: list[tuple[Any, ...]]) -> None:
    """The rows read must be the manifest's, partition by partition and run by run."""
    got: dict[tuple[str, int | None], int] = {}
    for day, run_id, rows in counts:
        key = partition_key(day)
        got[(key, int(run_id) if run_id is not None else None)] = int(rows)
    want: dict[tuple[str, int | None], int] = {
        (k, r): n for k, p in table.partitions.items() for r, n in p.runs.items()}
    if got == want:
        return
    (key, run_id), _ = sorted((set(got.items()) ^ set(want.items())), key=repr)[0]
    raise StoreError(
        f"lake {lake.root}: the files of table {name} hold {got.get((key, run_id), 0)} rows "
        f"of run {shown(run_id)} in partition {key}, where version {manifest.version} of the "
        f"older format says {want.get((key, run_id), 0)} (damaged or tampered with); nothing "
        "was changed: restore the lake from a backup")


def _remove_legacy(lake: LakeFS) -> None:
    """Delete the older format; the manifest folder last (the mark of an unfinished
    upgrade). A file the Delta tables hold is never deleted (the names never meet; this only
    makes sure)."""
    snapshot = read_snapshot(lake)
    keep = {f for t in snapshot.tables.values() for f in t.files_of()}
    files = sorted(older_format.known_files(lake) - keep)
    lake.delete_files(files)
    for folder in older_format.OWN_FOLDERS:
        _delete_tree(lake, folder)
    lake.delete_files(list(older_format.LOCKS))
    _delete_tree(lake, older_format.MANIFEST_DIR)
    log.info("lake %s: removed the older format (%s data files)", lake.root, len(files))


def _delete_tree(lake: LakeFS, rel: str) -> None:
    if not lake.local:   # objects: each one under the prefix (pyarrow lists `rel/`)
        lake.delete_files([e.path for e in lake.list_files(rel, recursive=True)])
    lake.delete_dir(rel)   # a local folder: removed whole, links not followed


# --- the older csload's lock ---------------------------------------------------------------


class _LegacyLock:
    """The older csload's writer lock, held by this upgrade: local, flock(2) on
    `_csload/lock`, released when the process ends; S3, the lease `_csload/lock.json`.

    The lease has that csload's known limit (no conditional write): two processes taking it
    within the same moment may both believe they hold it. So before it deletes a table log,
    and before its ledger commit, an upgrade checks that no ledger has appeared; a ledger
    commit of the other would fail then as well (it is created `mode="error"`)."""

    def __init__(self, lake: LakeFS) -> None:
        self.lake = lake
        self.owner = uuid.uuid4().hex
        self._fd: int | None = None

    def take(self) -> None:
        if self.lake.local:
            self._flock()
            return
        current = self._read()
        if current is not None and not _stale(current):
            raise _held(self.lake, current)
        self._write()
        check = self._read()
        if check is None or check.get("owner") != self.owner:
            raise _held(self.lake, check)

    def renew(self) -> None:
        """Raise unless the lock is still this upgrade's; push an S3 lease's expiry on."""
        if self.lake.local:
            return
        current = self._read()
        if current is None or current.get("owner") != self.owner:
            raise LakeConflict(f"lake {self.lake.root}: this upgrade lost the older csload's "
                               f"lock ({shown(current)}); nothing of it was committed")
        self._write()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # drops the flock
            self._fd = None
        elif not self.lake.local:
            current = self._read()
            if current is not None and current.get("owner") == self.owner:
                self.lake.delete_files([older_format.LEASE_OBJECT])

    def _flock(self) -> None:
        # Here: fcntl is Unix only (local lakes need flock(2), as the older csload's did).
        import fcntl

        path = self.lake.local_path(older_format.LOCK_FILE)
        with self.lake.errors("open the older csload's lock"):
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _held(self.lake, None) from None
        self._fd = fd

    def _read(self) -> dict[str, Any] | None:
        data = self.lake.read_bytes(older_format.LEASE_OBJECT)
        try:
            info = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return None   # taken over as stale, as the older csload did
        return info if isinstance(info, dict) else None

    def _write(self) -> None:
        now = datetime.now(UTC)
        self.lake.write_bytes(older_format.LEASE_OBJECT, orjson.dumps({
            "host": socket.gethostname(), "pid": os.getpid(), "boot_id": _boot_id(),
            "owner": self.owner,
            "since": now.isoformat(timespec="seconds"),
            "expires": (now + timedelta(seconds=LEASE_SECONDS)).isoformat()}))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stale(info: dict[str, Any]) -> bool:
    """A lease past its expiry, or one whose holder ran on this machine and is gone (the
    older csload's rule)."""
    try:
        expires = datetime.fromisoformat(str(info["expires"]))
    except (KeyError, ValueError):
        return True
    if expires.tzinfo is None or expires <= datetime.now(UTC):
        return True
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or info.get("boot_id") != _boot_id() \
            or not isinstance(pid, int) or isinstance(pid, bool):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _held(lake: LakeFS, info: dict[str, Any] | None) -> StoreLockedError:
    who = "" if not info else f" ({shown(info.get('host'))}, pid {shown(info.get('pid'))})"
    holder = f"lake {lake.root} is being synced or upgraded by another process{who}"
    return StoreLockedError(f"{holder}: let it finish, then sync again", holder=holder)


@contextlib.contextmanager
def _legacy_lock(lake: LakeFS) -> Iterator[_LegacyLock]:
    lock = _LegacyLock(lake)
    lock.take()
    try:
        yield lock
    finally:
        with contextlib.suppress(StoreError, OSError):
            lock.release()
