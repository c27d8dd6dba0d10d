"""Where a sync writes: a DuckDB database file, or a Parquet lake (a local folder or s3://).

Both stores have one interface (`Store`), so the pipeline drives either the same way. The part
downloads are staged on local disk: beside the database, inside a local lake's `_csload/`, or
in the temporary folder for a lake in object storage.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb

from csload.api.models import Job, Run
from csload.errors import ConfigError, StoreError
from csload.ledger import Ledger
from csload.load import DuckDBStore, RunOutcome, StagedRun, connect

DEFAULT_DB = "contentsquare.duckdb"

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


@dataclass(frozen=True, kw_only=True)
class Target:
    """A DuckDB file (`db`) or a Parquet lake (`parquet`), never both."""

    db: Path | None = None
    parquet: str | None = None
    storage_options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, *, db: str | Path | None, parquet: str | Path | None,
           storage_options: Mapping[str, str] | None = None) -> Target:
        check_one_target(db, parquet)
        if parquet is not None:
            return cls(parquet=str(parquet), storage_options=dict(storage_options or {}))
        return cls(db=Path(db if db is not None else DEFAULT_DB))

    @property
    def label(self) -> str:
        return self.parquet if self.parquet is not None else str(self.db)

    @property
    def is_lake(self) -> bool:
        return self.parquet is not None

    def staging_dir(self) -> Path:
        """Local folder for part downloads (the staging of unapplied runs)."""
        if self.parquet is None:
            assert self.db is not None
            return self.db.parent / f".{self.db.name}.staging"
        from csload.lake.fs import is_s3_url

        if is_s3_url(self.parquet):
            digest = hashlib.sha256(self.parquet.encode()).hexdigest()[:12]
            return Path(tempfile.gettempdir()) / f"csload-downloads-{digest}"
        return Path(self.parquet) / "_csload" / "downloads"

    def open(self) -> Store:
        """Open the target for writing (fails fast if another sync holds it)."""
        store: Store
        if self.parquet is not None:
            from csload.lake import ParquetStore

            store = ParquetStore.open(self.parquet, storage_options=self.storage_options)
        else:
            assert self.db is not None
            if not self.db.parent.is_dir():
                raise ConfigError(f"cannot create the database {self.db}: folder "
                                  f"{self.db.parent} does not exist")
            store = DuckDBStore.open(self.db)
        # Leftovers of a killed sync: their runs were never committed, so they load again.
        shutil.rmtree(self.staging_dir(), ignore_errors=True)
        return store

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
