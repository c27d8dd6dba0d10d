"""Where a sync writes: a DuckDB database file, or a lake of Delta tables (local or s3://).

Both stores have one interface (`Store`), so the pipeline drives either the same way. The part
downloads are staged on local disk: beside the database, inside a local lake's `_csload/`, or
in the temporary folder for a lake in object storage; or, when the user chose a staging folder
(`staging_dir`), in a subfolder of csload's own there: csload only ever removes its own folders.

Opening a target for writing checks every local folder it needs first: an OS error there (a
folder not writable, a file in the way) is one StoreError naming the path, reason and remedy.

On a shared host, what csload creates is the user's alone: the staging folder is made anew
at each sync, exclusively and 0700 (another user can neither read the export data nor swap a
part before it loads), and one found in its place that another user owns is refused, never
used or removed; a leftover of the user's own is removed whole, whatever its mode. A lake has
no lock, so two syncs of it may run at once: each of its syncs stages in a folder of its own
(csload.scratch: a name no one can guess, 0700, held while the sync runs), inside the lake's
staging folder, or, for a lake in object storage, beside the guessable name in the temporary
folder; the next sync removes a killed sync's folder, never a running one's (csload.staging).
A new DuckDB file is created 0600. A lake's path may not hold `%` (deltalake decodes it) nor
`[`, `*` or `?`: DuckDB reads
them as a pattern in the paths it is given (the database's own staged parts are read as
literal paths, csload.load.sql.literal_path).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import duckdb

from csload.api.models import Job, Run
from csload.config import Limits, file_lake_options
from csload.delta_folders import refuse_inside_table
from csload.errors import ConfigError, StoreError
from csload.host_limits import check_address_space, fit_open_files
from csload.lake.layout import RESERVED_COLUMNS
from csload.load.duckdb import DuckDBStore, connect
from csload.load.ledger import Ledger
from csload.load.outcome import AppliedRun, UnloadedRun
from csload.redact import redact_options
from csload.scratch import OwnFolder, fresh_folder
from csload.staging import (
    STAGING_CHOICE,
    check_staging_root,
    make_private_folder,
    os_reason,
    own_folder_in,
    probe_writable,
)

if TYPE_CHECKING:
    from csload.load.status import StoreStatus
from csload.transfer.staged import StagedRun

DEFAULT_DB = "contentsquare.duckdb"

T = TypeVar("T")


class Store(Protocol):
    """The single writer of a target: what the pipeline needs from DuckDBStore/ParquetStore."""

    @property
    def ledger(self) -> Ledger: ...

    def loaded_runs(self) -> set[int]: ...

    def apply(self, runs: Sequence[StagedRun]) -> list[AppliedRun]: ...

    def record_unloaded(self, runs: Sequence[UnloadedRun]) -> int: ...

    def record_source_failed(self, failures: Sequence[tuple[Job, Run, str]]) -> list[Run]: ...

    def record_project(self, project_id: int) -> None: ...

    def name_custom_vars(self, variables: Sequence[tuple[int, str | None]]) -> None: ...

    def close(self) -> None: ...


def check_one_target(db: object, parquet: object, *, flags: bool = False) -> None:
    """A sync, status or backfill writes or reads one target: refuse both."""
    for name, value in (("db", db), ("parquet", parquet)):
        if value is not None and not isinstance(value, str | os.PathLike):
            raise ConfigError(f"{name} must be a path (a str or a pathlib.Path), got "
                              f"{type(value).__name__}")
    if db is not None and parquet is not None:
        names = ("--db", "--parquet") if flags else ("db", "parquet")
        raise ConfigError(f"choose one target: a DuckDB database ({names[0]}) or a lake of "
                          f"Delta tables ({names[1]}), not both")


# Characters DuckDB's readers expand as a pattern in a path (read_parquet over a lake's files).
GLOB_CHARACTERS = "[*?"


def check_lake_path(root: str) -> None:
    """Refuse a lake path holding a glob character: DuckDB would read its files as a pattern
    (another folder's files, or none at all: a run loaded 0 rows "successfully"); or a `%`:
    deltalake decodes `%20` in a table's path, and the files and the log went to two places
    (a local lake failed at its first commit, an S3 one was written under two prefixes,
    which Delta readers could not read: found 2026-12-07)."""
    found = sorted({char for char in root if char in GLOB_CHARACTERS})
    if found:
        raise ConfigError(f"the lake path {root!r} holds {' and '.join(found)}, which DuckDB "
                          "reads as a file pattern; choose a path without [, * or ?")
    if "%" in root:
        raise ConfigError(f"the lake path {root!r} holds %, which Delta Lake's readers and "
                          "writers read as an escape (%20 is a space), so the tables' files "
                          "and logs would be written to two places; choose a path without %")


@dataclass(frozen=True, kw_only=True)
class Target:
    """A DuckDB file (`db`) or a lake of Delta tables (`parquet`), never both. `staging_root`: a
    folder the user chose for the downloads (None: the default place, see `staging_dir`)."""

    db: Path | None = None
    parquet: str | None = None
    storage_options: Mapping[str, str] = field(default_factory=dict)
    staging_root: Path | None = None
    # A lake sync's own staging folder (csload.scratch), once the target is open: a name no
    # one can guess, held by this process until `release_staging`; with the lake's staging
    # folder it was made in, removed too once empty (None: made in the temporary folder).
    _made: list[tuple[OwnFolder, Path | None]] = field(default_factory=list, init=False,
                                                       repr=False, compare=False)

    def __repr__(self) -> str:
        # The storage options may hold the S3 secret key and session token.
        where = f"db={str(self.db)!r}" if self.db is not None else f"parquet={self.parquet!r}"
        return (f"Target({where}, storage_options={redact_options(self.storage_options)!r}, "
                f"staging_root={self.staging_root!r})")

    @classmethod
    def of(cls, *, db: str | Path | None, parquet: str | Path | None,
           storage_options: Mapping[str, str] | None = None,
           staging_dir: str | Path | None = None, auth_url: str | None = None) -> Target:
        """`storage_options` None: ./csload.toml's `[lake]` for an s3:// lake. The https rule
        of its endpoint (storage option or environment) is checked here, before any request
        (csload.lake.fs.require_secure_endpoint): for a sync, `auth_url` is its settings', and
        plain http goes to loopback in simulator mode only; None (a reader): to loopback, or
        with the storage option `allow_http`."""
        check_one_target(db, parquet)
        check_address_space("lake read" if parquet is not None else "database")
        # `--parquet "$LAKE"` with LAKE unset: "" would be the current folder (`--db ""`
        # reaches here as Path("."), the click option's Path of "").
        if (isinstance(parquet, str) and not parquet.strip()) or (
                db is not None and (not str(db).strip() or Path(db) == Path("."))):
            raise ConfigError(f"the {'lake' if parquet is not None else 'database'} path is "
                              "empty (an unset variable in the command?): give the database "
                              "file (--db) or the lake's folder (--parquet)")
        root = None if staging_dir is None else check_staging_root(staging_dir)
        # `~` as a shell would: the lake's filesystem expanded it and its downloads folder
        # did not ("~/lake" failed every sync), and a database's was never expanded (QA).
        if parquet is not None and str(parquet).startswith("~"):
            parquet = os.path.expanduser(str(parquet))
        if db is not None and str(db).startswith("~"):
            db = Path(db).expanduser()
        if parquet is not None:
            check_lake_path(str(parquet))
            options = dict(storage_options if storage_options is not None else
                           file_lake_options(parquet))
            # Only for a lake: csload.lake imports pyarrow, which a database never needs.
            from csload.lake.fs import is_s3_url, require_secure_endpoint

            if is_s3_url(str(parquet)):
                require_secure_endpoint(options, os.environ, auth_url=auth_url)
            return cls(parquet=str(parquet), storage_options=options, staging_root=root)
        return cls(db=Path(db if db is not None else DEFAULT_DB), staging_root=root)

    @property
    def label(self) -> str:
        return self.parquet if self.parquet is not None else str(self.db)

    @property
    def is_lake(self) -> bool:
        return self.parquet is not None

    @property
    def reserved_columns(self) -> dict[str, str]:
        """Column names the target's tables keep for themselves (a job exporting one is
        refused: csload.load.placement), each with what it is."""
        return RESERVED_COLUMNS if self.is_lake else {}

    def staging_dir(self) -> Path:
        """Local folder for part downloads (the staging of unapplied runs). Always a folder
        of csload's own: in a chosen `staging_root`, a subfolder named after the target (two
        targets staging there at once never share one).

        A DuckDB file's sync stages in that folder itself (the database's lock makes it the
        only one) and removes it whole. A lake has no lock, so each of its syncs stages in a
        folder of its own (csload.scratch), made by `open`: `<this path>/sync-<random>` (this
        path is removed once no sync stages there), or, for a lake in object storage without
        a chosen root, `<this path>-<random>` beside it in the temporary folder (whose
        guessable name is never used itself). Before `open`, this path."""
        if self._made:
            return self._made[0][0].path
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
            refuse_inside_table(f"database {self.db}", self.db)
            try:
                probe_writable(folder)
            except OSError as exc:
                raise StoreError(
                    f"cannot write in folder {folder}, where the database {self.db} and its "
                    f".wal file are written: {os_reason(exc)}; make the folder writable, or "
                    "choose another database (--db)") from None
            # Not a probe by opening the file: closing any descriptor of it would release the
            # locks DuckDB holds on it in this process (POSIX record locks are per process).
            if self.db.exists() and not os.access(self.db, os.W_OK):
                raise StoreError(f"cannot write the database {self.db}: permission denied; "
                                 "make the file writable, or choose another database (--db)")
        if self.staging_root is not None:
            try:
                probe_writable(self.staging_root)
            except OSError as exc:
                raise StoreError(
                    f"cannot write in the staging folder {self.staging_root}: "
                    f"{os_reason(exc)}; make it writable, or choose another "
                    f"({STAGING_CHOICE})") from None

    def open(self, limits: Limits | None = None) -> Store:
        """Open the target for writing (fails fast if another sync holds it), with an empty
        staging folder. A local folder that cannot be used is a StoreError, said before the
        store is opened wherever it can be (`check_writable`). `limits`: the sync's, for the
        caps on a run's files (csload.load.limits)."""
        store: Store
        self.check_writable()
        fit_open_files((limits or Limits()).download_concurrency)
        check_address_space("lake" if self.parquet is not None else "database")
        if self.parquet is not None:
            from csload.lake_upgrade.convert import open_store

            # The lake's scratch (its work database's spill, S3 uploads) goes where the
            # downloads go when the user chose the place: a csload-lake-* folder of its own.
            store = open_store(self.parquet, storage_options=self.storage_options,
                               scratch_dir=self.staging_root, limits=limits)
        else:
            assert self.db is not None
            store = _open_private(self.db, limits)
        try:
            self._empty_staging()
        except BaseException:
            store.close()
            raise
        return store

    def _empty_staging(self) -> None:
        """The staging folder, created empty and private (0700). A database's: called with
        its lock held (another sync of the same database may be staging there until then).
        A lake's: a folder of this sync's own, held until `release_staging`; the user's own
        folders of killed syncs are removed first, those of running syncs left alone."""
        staging = self.staging_dir()
        in_tmp = (self.parquet is not None and self.staging_root is None
                  and not self.local_lake_staging())
        try:
            if in_tmp:
                self._made[:] = [(fresh_folder(staging.parent, f"{staging.name}-"), None)]
            elif self.parquet is not None:
                self._made[:] = [(own_folder_in(staging), staging)]
            else:
                make_private_folder(staging)
                probe_writable(staging)
        except OSError as exc:
            elsewhere = ("choose another staging folder" if self.staging_root is not None
                         else "choose a staging folder elsewhere")
            fix = ("move that file away" if isinstance(exc, FileExistsError)
                   else f"make {staging.parent} writable")
            raise StoreError(
                f"cannot use the staging folder {staging} for the downloads: "
                f"{os_reason(exc)}; {fix}, or {elsewhere} ({STAGING_CHOICE})") from None

    def drop_empty_staging(self) -> None:
        """Remove a database's staging folder a sync left empty, which blocked the other
        users' syncs of a shared database; with its lock held (else another may stage)."""
        if self.db is not None:
            with contextlib.suppress(OSError):   # not empty, or gone: left as it is
                self.staging_dir().rmdir()

    def release_staging(self) -> None:
        """Remove a lake sync's own staging folder and let go of it, and the folder it was
        made in if no other sync stages there (not a link: the user put it there). Nothing
        for a database's, which its sync removes."""
        for own, shared in self._made:
            own.remove()
            if shared is not None and not shared.is_symlink():
                with contextlib.suppress(OSError):   # not empty: another sync stages there
                    shared.rmdir()
        self._made.clear()

    def local_lake_staging(self) -> bool:
        """Whether the lake stages inside itself (a local lake, no staging folder chosen)."""
        from csload.lake.fs import is_s3_url

        return self.parquet is not None and not is_s3_url(self.parquet)

    # -- the ledgers, for a backfill: read where they are, written beside them -------------------

    def exists(self) -> bool:
        """Whether the target was created (a database file; a lake with a first version).
        Creates nothing; a lake URL or storage option that cannot be used fails here."""
        if self.parquet is not None:
            from csload.lake.fs import LakeFS
            from csload.lake.snapshot import read_snapshot, refuse_older_format

            lake = LakeFS.open(self.parquet, self.storage_options)
            snapshot = read_snapshot(lake)
            refuse_older_format(lake, snapshot)
            return snapshot.exists
        assert self.db is not None
        return self.db.exists()

    def connect_ledger(self) -> duckdb.DuckDBPyConnection:
        """A connection to the target's ledger tables as they are now, creating nothing: the
        database file; a lake's ledger as its latest commit has it (connect again to see a
        later one); an empty in-memory database where
        the target does not exist yet.

        The database file is opened read-write all the same: DuckDB refuses, within one
        process, a read-only connection to a file that another connection (a notebook's
        `csload.connect`) holds read-write. Only the caller's own tables are written there
        (the backfill's, through `create_database`)."""
        if not self.exists():
            return duckdb.connect(":memory:")
        if self.parquet is not None:
            from csload.lake.reader import connect_lake

            return connect_lake(self.parquet, storage_options=self.storage_options)
        assert self.db is not None
        return connect(self.db)

    def create_database(self) -> duckdb.DuckDBPyConnection:
        """A connection to the database file, created (0600, as `open` creates it) if it does
        not exist yet; its folder checked first (`check_writable`)."""
        assert self.db is not None, "a lake is created by its first load, through a sync"
        self.check_writable()
        with _created_private(self.db):
            return connect(self.db)

    def check_lake_usable(self) -> None:
        """Fail before anything is created if the lake cannot be written (writes nothing)."""
        assert self.parquet is not None
        from csload.lake.fs import LakeFS

        LakeFS.open(self.parquet, self.storage_options).check_usable()

    def done_runs_read_only(self) -> set[int]:
        """What a dry run needs from the ledger, without writing (or creating) anything."""
        return self.read_ledger(Ledger.done_run_ids) or set()

    def read_ledger(self, read: Callable[[Ledger], T], *, without_ledger: bool = False
                    ) -> T | None:
        """`read` applied to the target's ledger, read-only (nothing is written or created);
        None where there is no target or no ledger yet (`without_ledger`: a database file
        without a ledger is read too, by a `read` that checks `Ledger.exists`)."""
        if self.parquet is not None:
            from csload.lake.reader import lake_read_ledger

            return lake_read_ledger(self.parquet, read, storage_options=self.storage_options)
        assert self.db is not None
        if not self.db.exists():
            return None
        con = connect(self.db, read_only=True)
        try:
            ledger = Ledger(con)
            return read(ledger) if without_ledger or ledger.exists() else None
        finally:
            con.close()


@contextlib.contextmanager
def _created_private(db: Path) -> Iterator[None]:
    """Around DuckDB creating the database file `db`: created 0600 (the umask while it is
    created, then its mode), no other user's even empty. An existing file is left as it is."""
    if db.exists():
        yield
        return
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
    # Not for ":memory:", which has no file.
    with contextlib.suppress(FileNotFoundError):
        db.chmod(0o600)


def _open_private(db: Path, limits: Limits | None = None) -> Store:
    """DuckDBStore.open, a new database file created 0600; a table the user dropped is
    loaded again (DuckDBStore.forget_dropped_tables)."""
    with _created_private(db):
        store = DuckDBStore.open(db, limits)
    try:
        store.forget_dropped_tables()
    except BaseException:
        store.close()
        raise
    return store


def connect_target(path: str | Path | None = None, *, parquet: str | None = None,
                   read_only: bool = False,
                   storage_options: Mapping[str, str] | None = None,
                   create: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for analysis code: to a csload database file, or, with `parquet`, to
    a lake (an in-memory DuckDB with a view per table over the files of the version its ledger
    records, csload.lake.reader; `storage_options` default: ./csload.toml's `[lake]`).

    A database file that does not exist is refused (StoreError), so that a mistyped path
    does not open a new, empty database; pass `create=True` to create it (":memory:", DuckDB's
    in-memory database, is always new)."""
    target = Target.of(db=path, parquet=parquet, storage_options=storage_options)
    if target.parquet is not None:
        from csload.lake.reader import connect_lake

        return connect_lake(target.parquet, storage_options=target.storage_options)
    assert target.db is not None
    if target.db.is_dir():   # it said "IO Error: ... Is a directory"
        raise StoreError(f"{target.db} is a folder, not a database file (a lake? csload."
                         f"connect(parquet={str(target.db)!r}))")
    if not create and str(target.db) != ":memory:" and not target.db.exists():
        raise StoreError(f"no database at {target.db}: the file does not exist "
                         "(pass create=True to create a new one)")
    if create and not read_only and str(target.db) != ":memory:":
        # Created 0600 as a sync creates it: the user's own connection made it 0644, and the
        # export data a later sync put in it was readable by every user of the host (QA).
        with _created_private(target.db):
            return connect(target.db, read_only=read_only)
    return connect(target.db, read_only=read_only)


def status(db: str | Path | None = None, *, parquet: str | Path | None = None,
           storage_options: Mapping[str, str] | None = None) -> StoreStatus:
    """What a target's ledger says: its tables, its jobs (last window, days missing) and
    the runs that failed or expired. Of the DuckDB database at `db` (default
    `contentsquare.duckdb`; it must exist and be a csload database, else StoreError), or of
    the lake at `parquet` (a folder or s3:// URL; `storage_options` as for `connect`)."""
    target = Target.of(db=db, parquet=parquet, storage_options=storage_options)
    # Here, not at the top: a sync opens targets and never reads a status.
    from csload.load.status import database_status, ledger_status

    if target.parquet is not None:
        # Only for a lake: csload.lake imports pyarrow, which a database never needs.
        from csload.lake.reader import lake_status_input

        con, label, tables = lake_status_input(target.parquet,
                                               storage_options=target.storage_options)
        try:
            return ledger_status(con, label, tables)
        finally:
            con.close()
    assert target.db is not None

    return database_status(target.db)


def read_status(db: str | Path) -> StoreStatus:
    """The older name of `status(db)`, kept for the code that uses it."""
    return status(db)


def read_target_status(*, db: str | Path | None = None, parquet: str | Path | None = None,
                       storage_options: Mapping[str, str] | None = None) -> StoreStatus:
    """The older name of `status(db=..., parquet=...)`, kept for the code that uses it."""
    return status(db, parquet=parquet, storage_options=storage_options)
