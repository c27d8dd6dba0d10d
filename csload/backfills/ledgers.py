"""Where a backfill reads the target's ledgers and records its jobs.

A DuckDB database holds the backfill ledger (`_csload.backfills`, csload.load.backfill_ledger)
beside the loader's, in the same file: one connection, used from worker threads one call at a
time. A lake holds nothing of the backfill's own (docs/backfill.md, "Where the backfill
keeps its state"): its ledger is read, never written. The target is opened the one way every
caller opens it (csload.target.Target); this module only says what the backfill does with it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import anyio
import anyio.to_thread
import duckdb

from csload.errors import ConfigError
from csload.load.backfill_ledger import BackfillLedger
from csload.load.ledger import Ledger
from csload.load.placement import users_table
from csload.target import Target

__all__ = ["BackfillLedgers", "DatabaseLedgers", "LakeLedgers", "open_ledgers",
           "writable_ledgers"]

T = TypeVar("T")


class BackfillLedgers:
    """The target's ledgers as the backfill uses them: `run` reads (or writes, once writable)
    through a BackfillLedger in a worker thread; `write` is a no-op where nothing is written."""

    async def run(self, action: Callable[[BackfillLedger], T]) -> T:
        raise NotImplementedError

    async def write(self, action: Callable[[BackfillLedger], None]) -> None:
        raise NotImplementedError

    async def set_state(self, job_id: int, state: str, now: datetime, run_id: int | None,
                        message: str | None) -> None:
        """Record a backfill job's state (where a backfill ledger is kept)."""
        await self.write(lambda ledger: ledger.set_state(job_id, state, now=now, run_id=run_id,
                                                         message=message))

    async def recorded_expired(self, run_id: int) -> bool:
        """Whether the target's loader ledger records the run as expired: a sync found its
        files gone (storage may drop them before csload's 7 days)."""
        def expired(ledger: BackfillLedger) -> bool:
            loader = Ledger(ledger.con)
            return loader.exists() and loader.status_of(run_id) == "expired"

        return await self.run(expired)

    async def refuse_foreign(self, table: str) -> None:
        """ConfigError if `table` is one of the database's that csload did not make
        (Ledger.foreign_tables): the backfill would load into the user's own table."""
        if table in await self.run(lambda ledger: Ledger(ledger.con).foreign_tables()):
            raise ConfigError(f"{users_table(table)}: name another table (--table NAME)")

    def close(self) -> None:
        raise NotImplementedError


class DatabaseLedgers(BackfillLedgers):
    """A DuckDB target: its connection (an empty in-memory one while the file does not exist
    yet, `in_memory`). Writes go through once `ensure` created the ledger tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, in_memory: bool = False) -> None:
        self._con = con
        self._writable = False
        self.in_memory = in_memory
        self._limiter = anyio.CapacityLimiter(1)

    def ensure(self) -> None:
        """Create the ledger tables; from now on, writes go through."""
        BackfillLedger(self._con).ensure()
        self._writable = True

    async def run(self, action: Callable[[BackfillLedger], T]) -> T:
        con = self._con

        def call() -> T:
            cursor = con.cursor()
            try:
                return action(BackfillLedger(cursor, writable=self._writable))
            finally:
                cursor.close()

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def write(self, action: Callable[[BackfillLedger], None]) -> None:
        if self._writable:
            await self.run(action)

    def close(self) -> None:
        self._con.close()


class LakeLedgers(BackfillLedgers):
    """A lake target (Delta tables): its ledger, read-only, and no backfill ledger at all.

    Each read connects to the lake's current version (Target.connect_ledger), because every
    window the backfill loads publishes a new one. Nothing is ever written here: the
    backfill's jobs are found again by their deterministic names (in the API's job list and in
    the lake's `_csload.jobs`), and whether a window is loaded is read from `_csload.runs`,
    which a lake commits with its data. So the backfill adds no state of its own to a lake,
    takes no lock, and a `--dry-run` leaves the lake untouched.
    """

    def __init__(self, target: Target) -> None:
        assert target.parquet is not None
        self.target = target
        self._limiter = anyio.CapacityLimiter(1)

    async def run(self, action: Callable[[BackfillLedger], T]) -> T:
        def call() -> T:
            con = self.target.connect_ledger()
            try:
                return action(BackfillLedger(con, writable=False))
            finally:
                con.close()

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def write(self, action: Callable[[BackfillLedger], None]) -> None:
        return None

    async def refuse_foreign(self, table: str) -> None:
        """StoreError if the lake has no table `table` yet and its folder holds files csload
        did not write (csload.lake.recovery.refuse_others_files: the table's vacuum would
        delete them), before the backfill creates its jobs; the sync's batch would refuse the
        same, later. A folder of another tool's Delta table is refused when the lake opens."""
        from csload.lake.fs import LakeFS
        from csload.lake.layout import LOG_DIR
        from csload.lake.recovery import refuse_others_files

        def check() -> None:
            assert self.target.parquet is not None
            lake = LakeFS.open(self.target.parquet, self.target.storage_options)
            if not lake.exists(f"{table}/{LOG_DIR}"):
                refuse_others_files(lake, table)

        await anyio.to_thread.run_sync(check, limiter=self._limiter)

    def close(self) -> None:
        return None


def open_ledgers(target: Target, *, must_exist: bool) -> BackfillLedgers:
    """The target's ledgers, read-only in effect (nothing is created or written yet).
    `must_exist`: a target that does not exist is a ConfigError (`--gaps` has no coverage
    to fill there)."""
    exists = target.exists()   # a bad lake URL or storage option fails here
    if must_exist and not exists:
        if target.parquet is not None:
            raise ConfigError(f"no csload lake at {target.parquet}: there is no daily "
                              "coverage to fill yet (run `csload sync --parquet "
                              f"{shlex.quote(str(target.parquet))}` first)")
        raise ConfigError(f"no database at {target.db}: there is no daily coverage to fill "
                          f"yet (run `csload sync --db {shlex.quote(str(target.db))}` first)")
    if target.parquet is not None:
        return LakeLedgers(target)
    return DatabaseLedgers(target.connect_ledger(), in_memory=not exists)


def writable_ledgers(target: Target, current: BackfillLedgers) -> BackfillLedgers:
    """The target ready for the backfill: a database created if needed, with the ledger
    tables; a lake checked (the first load creates it, through the sync)."""
    if isinstance(current, LakeLedgers):
        target.check_lake_usable()
        return current
    assert isinstance(current, DatabaseLedgers)
    if current.in_memory:
        current.close()
        current = DatabaseLedgers(target.create_database())
    try:
        current.ensure()
    except BaseException:
        current.close()
        raise
    return current
