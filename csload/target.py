"""Where a sync writes: a DuckDB database file, or a Parquet lake (a local folder or s3://).

Both stores have one interface (`Store`), so the pipeline drives either the same way. The part
downloads are staged on local disk: beside the database, inside a local lake's `_csload/`, or
in the temporary folder for a lake in object storage; or, when the user chose a staging folder
(`staging_dir`), in a subfolder of csload's own there: csload only ever removes its own folders.

Opening a target for writing checks every local folder it needs first: an OS error there
(a folder that is not writable, a file in the way) is one StoreError naming the path, the
reason and what to do, never a traceback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb

from csload.api.models import Job, Run
from csload.config import STAGING_DIR_ENV, staging_path
from csload.errors import ConfigError, StoreError
from csload.ledger import Ledger
from csload.load import DuckDBStore, RunOutcome, StagedRun, connect

DEFAULT_DB = "contentsquare.duckdb"
# How to put the downloads elsewhere, for messages about the staging folder.
STAGING_CHOICE = f"--staging-dir, staging_dir in csload.toml, or {STAGING_DIR_ENV}"

T = TypeVar("T")


class Store(Protocol):
    """The single writer of a target: what the pipeline needs from DuckDBStore/ParquetStore."""

    @property
    def ledger(self) -> Ledger: ...

    def loaded_runs(self) -> set[int]: ...

    def apply(self, runs: Sequence[StagedRun]) -> list[RunOutcome]: ...

    def record_failed(self, job: Job, run: Run, message: str,
                      table: str | None = None) -> None: ...

    def record_expired(self, job: Job, run: Run, message: str = "",
                       table: str | None = None) -> None: ...

    def record_source_failed(self, failures: Sequence[tuple[Job, Run, str]]) -> list[Run]: ...

    def name_custom_vars(self, variables: Sequence[tuple[int, str | None]]) -> None: ...

    def close(self) -> None: ...


def done_runs(store: Store) -> set[int]:
    """Runs a sync must not fetch again: loaded, or recorded as expired (backfill those)."""
    return store.loaded_runs() | {record.run_id for record in store.ledger.expired_runs()}


def check_one_target(db: object, parquet: object, *, flags: bool = False) -> None:
    """A sync, status or backfill writes or reads one target: refuse both."""
    if db is not None and parquet is not None:
        names = ("--db", "--parquet") if flags else ("db", "parquet")
        raise ConfigError(f"choose one target: a DuckDB database ({names[0]}) or a Parquet "
                          f"lake ({names[1]}), not both")


def check_staging_root(value: str | Path) -> Path:
    """A staging folder the user chose: it must be an existing folder (csload creates only its
    own subfolder there, so that a mistyped path does not grow a tree of folders)."""
    path = staging_path(value, "staging_dir")
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"staging folder {path} {state}: create it, or choose another "
                          f"({STAGING_CHOICE})")
    return path


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileExistsError):
        return "a file has that name"
    return exc.strerror or type(exc).__name__


def _probe_writable(folder: Path) -> None:
    """Create and remove a file in `folder`: the one check of writability that holds for
    root, ACLs and read-only mounts alike (os.access does not)."""
    handle, name = tempfile.mkstemp(prefix=".csload-probe-", dir=folder)
    os.close(handle)
    os.unlink(name)


@dataclass(frozen=True, kw_only=True)
class Target:
    """A DuckDB file (`db`) or a Parquet lake (`parquet`), never both. `staging_root`: a
    folder the user chose for the downloads (None: the default place, see `staging_dir`)."""

    db: Path | None = None
    parquet: str | None = None
    storage_options: Mapping[str, str] = field(default_factory=dict)
    staging_root: Path | None = None

    @classmethod
    def of(cls, *, db: str | Path | None, parquet: str | Path | None,
           storage_options: Mapping[str, str] | None = None,
           staging_dir: str | Path | None = None) -> Target:
        check_one_target(db, parquet)
        root = None if staging_dir is None else check_staging_root(staging_dir)
        if parquet is not None:
            return cls(parquet=str(parquet), storage_options=dict(storage_options or {}),
                       staging_root=root)
        return cls(db=Path(db if db is not None else DEFAULT_DB), staging_root=root)

    @property
    def label(self) -> str:
        return self.parquet if self.parquet is not None else str(self.db)

    @property
    def is_lake(self) -> bool:
        return self.parquet is not None

    def staging_dir(self) -> Path:
        """Local folder for part downloads (the staging of unapplied runs). Always a folder
        of csload's own, which it removes whole: in a chosen `staging_root`, a subfolder named
        after the target (two targets staging there at once never share one)."""
        in_object_storage = False
        if self.parquet is not None:
            # Only for a lake: csload.lake imports pyarrow, which a database sync never needs.
            from csload.lake.fs import is_s3_url

            in_object_storage = is_s3_url(self.parquet)
        if self.staging_root is None and not in_object_storage:
            if self.db is not None:
                return self.db.parent / f".{self.db.name}.staging"
            return Path(str(self.parquet)) / "_csload" / "downloads"
        if in_object_storage:
            identity = str(self.parquet)
        else:
            identity = str((self.db or Path(str(self.parquet))).resolve())
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        return (self.staging_root or Path(tempfile.gettempdir())) / f"csload-downloads-{digest}"

    def check_writable(self) -> None:
        """Refuse, before anything is opened or requested, a database that cannot be written
        (its folder: DuckDB writes the file and its .wal there) or a chosen staging folder
        that cannot be: StoreError naming the path, the reason and the fix."""
        if self.db is not None:
            folder = self.db.parent
            if not folder.is_dir():
                state = (f"{folder} is a file, not a folder" if folder.exists()
                         else f"folder {folder} does not exist")
                raise ConfigError(f"cannot create the database {self.db}: {state}")
            try:
                _probe_writable(folder)
            except OSError as exc:
                raise StoreError(
                    f"cannot write in folder {folder}, where the database {self.db} and its "
                    f".wal file are written: {_os_reason(exc)}; make the folder writable, or "
                    "choose another database (--db)") from None
            # Not a probe by opening the file: closing any descriptor of it would release the
            # locks DuckDB holds on it in this process (POSIX record locks are per process).
            if self.db.exists() and not os.access(self.db, os.W_OK):
                raise StoreError(f"cannot write the database {self.db}: permission denied; "
                                 "make the file writable, or choose another database (--db)")
        if self.staging_root is not None:
            try:
                _probe_writable(self.staging_root)
            except OSError as exc:
                raise StoreError(
                    f"cannot write in the staging folder {self.staging_root}: "
                    f"{_os_reason(exc)}; make it writable, or choose another "
                    f"({STAGING_CHOICE})") from None

    def open(self) -> Store:
        """Open the target for writing (fails fast if another sync holds it), with an empty
        staging folder. A local folder that cannot be used is a StoreError, said before the
        store is opened wherever it can be (`check_writable`)."""
        store: Store
        self.check_writable()
        if self.parquet is not None:
            from csload.lake import ParquetStore

            # The lake's scratch (its work database's spill, S3 uploads) goes where the
            # downloads go when the user chose the place: a csload-lake-* folder of its own.
            store = ParquetStore.open(self.parquet, storage_options=self.storage_options,
                                      scratch_dir=self.staging_root)
        else:
            assert self.db is not None
            store = DuckDBStore.open(self.db)
        try:
            self._empty_staging()
        except BaseException:
            store.close()
            raise
        return store

    def _empty_staging(self) -> None:
        """The staging folder, created empty. Called with the target's lock held: another
        sync of the same target may be staging there until then."""
        staging = self.staging_dir()
        # Leftovers of a killed sync: their runs were never committed, so they load again.
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(exist_ok=True)
            _probe_writable(staging)
        except OSError as exc:
            elsewhere = ("choose another staging folder" if self.staging_root is not None
                         else "choose a staging folder elsewhere")
            fix = ("move that file away" if isinstance(exc, FileExistsError)
                   else f"make {staging.parent} writable")
            raise StoreError(
                f"cannot use the staging folder {staging} for the downloads: "
                f"{_os_reason(exc)}; {fix}, or {elsewhere} ({STAGING_CHOICE})") from None

    def done_runs_read_only(self) -> set[int]:
        """What a dry run needs from the ledger, without writing (or creating) anything."""
        done = self.read_ledger(
            lambda ledger: ledger.loaded_run_ids() | {r.run_id for r in ledger.expired_runs()})
        return done or set()

    def read_ledger(self, read: Callable[[Ledger], T]) -> T | None:
        """`read` applied to the target's ledger, read-only (nothing is written or created);
        None where there is no target or no ledger yet."""
        if self.parquet is not None:
            from csload.lake import lake_read_ledger

            return lake_read_ledger(self.parquet, read, storage_options=self.storage_options)
        assert self.db is not None
        if not self.db.exists():
            return None
        con = connect(self.db, read_only=True)
        try:
            ledger = Ledger(con)
            return read(ledger) if ledger.exists() else None
        finally:
            con.close()


def connect_target(path: str | Path | None = None, *, parquet: str | None = None,
                   read_only: bool = False,
                   storage_options: Mapping[str, str] | None = None,
                   create: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for analysis code: to a csload database file, or, with `parquet`,
    to a lake (an in-memory DuckDB with one view per table over the lake's current files,
    read through its manifest, so a reader never sees a superseded file).

    A database file that does not exist is refused (StoreError), so that a mistyped path
    does not open a new, empty database; pass `create=True` to create it (":memory:", DuckDB's
    in-memory database, is always new)."""
    target = Target.of(db=path, parquet=parquet, storage_options=storage_options)
    if target.parquet is not None:
        from csload.lake import connect_lake

        return connect_lake(target.parquet, storage_options=target.storage_options)
    assert target.db is not None
    if not create and str(target.db) != ":memory:" and not target.db.exists():
        raise StoreError(f"no database at {target.db}: the file does not exist "
                         "(pass create=True to create a new one)")
    return connect(target.db, read_only=read_only)
