"""Where a backfill reads the target's ledgers and records its jobs.

A DuckDB database holds the backfill ledger (`_csload.backfills`, csload.load.backfill_ledger)
beside the loader's, in the same file, opened for each read or write (one call at a time, in
a worker thread) and never held while the backfill waits for a run. A lake holds nothing of
the backfill's own (docs/backfill.md, "Where the backfill keeps its state"): its ledger is
read, never written. The target is opened the one way every caller opens it
(csload.target.Target); this module only says what the backfill does with it.
"""

from __future__ import annotations

import contextlib
import contextvars
import shlex
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TypeVar

import anyio
import anyio.to_thread
import duckdb

from csload.errors import ConfigError
from csload.load.backfill_ledger import BackfillLedger
from csload.load.duckdb import connect
from csload.load.holder import open_when_free
from csload.load.ledger import Ledger
from csload.load.placement import users_table
from csload.target import Target

__all__ = ["BackfillLedgers", "DatabaseLedgers", "LakeLedgers", "open_ledgers"]

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

    async def make_writable(self) -> None:
        """Ready the target for the backfill's writes (a database created if needed)."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """The target kept from other writers for the calls within (where it can be)."""
        yield

    def close(self) -> None:
        raise NotImplementedError


class DatabaseLedgers(BackfillLedgers):
    """A DuckDB target. The file is open only while the backfill reads or records (`run`, and
    `held` around a job's creation), never while it waits for a run: a backfill waits for hours,
    and while it held the file every scheduled sync, `csload status` and notebook of the
    database failed "in use" (found 2026-12-07). Each open waits up to `wait` seconds for
    another process to let go (`on_wait` says so, once per wait). Where the file does not exist
    yet, reads go to an empty in-memory database until `make_writable` creates it."""

    def __init__(self, target: Target, *, wait: float = 0.0,
                 on_wait: Callable[[str], None] = lambda message: None) -> None:
        assert target.db is not None
        self.target = target
        self.wait = wait
        self.on_wait = on_wait
        self._writable = False
        # An empty in-memory stand-in while there is no file yet.
        self._memory: duckdb.DuckDBPyConnection | None = (
            None if target.db.exists() else duckdb.connect(":memory:"))
        # The file's connection inside `held`, for the task holding it only: another task's
        # call opens its own, so that the hold's end cannot close a connection in its use.
        self._held: contextvars.ContextVar[duckdb.DuckDBPyConnection | None] = \
            contextvars.ContextVar(f"csload-backfill-held-{id(self)}", default=None)
        self._limiter = anyio.CapacityLimiter(1)

    async def _open(self) -> duckdb.DuckDBPyConnection:
        path = self.target.db
        assert path is not None

        async def attempt() -> duckdb.DuckDBPyConnection:
            # Shielded: a connection opened in a worker thread must not be lost to a cancel.
            with anyio.CancelScope(shield=True):
                con = await anyio.to_thread.run_sync(connect, path, limiter=self._limiter)
            return con

        return await open_when_free(attempt, wait=self.wait, on_wait=self.on_wait)

    async def _close(self, con: duckdb.DuckDBPyConnection) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(con.close, limiter=self._limiter)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """The file open (so no other process's backfill or sync has it) for every call
        within: a job's check, creation and record, so that a second backfill of the same
        database finds the first one's job instead of creating another."""
        if self._memory is not None or self._held.get() is not None:   # no file; held
            yield
            return
        con = await self._open()
        token = self._held.set(con)
        try:
            yield
        finally:
            self._held.reset(token)
            await self._close(con)

    async def run(self, action: Callable[[BackfillLedger], T]) -> T:
        held = self._memory or self._held.get()
        con = held if held is not None else await self._open()

        def call() -> T:
            cursor = con.cursor()
            try:
                return action(BackfillLedger(cursor, writable=self._writable))
            finally:
                cursor.close()

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        finally:
            if held is None:
                await self._close(con)

    async def write(self, action: Callable[[BackfillLedger], None]) -> None:
        if self._writable:
            await self.run(action)

    async def make_writable(self) -> None:
        """The database file created (0600) if needed, with the ledger tables; from now on,
        writes go through."""
        if self._memory is not None:   # no file yet
            self._memory.close()
            self._memory = None

            async def create() -> duckdb.DuckDBPyConnection:
                with anyio.CancelScope(shield=True):
                    con = await anyio.to_thread.run_sync(self.target.create_database,
                                                         limiter=self._limiter)
                return con

            # Another backfill or sync may be creating it too: it is then waited for.
            await self._close(await open_when_free(create, wait=self.wait,
                                                   on_wait=self.on_wait))
        await self.run(lambda ledger: ledger.ensure())
        self._writable = True

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None


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

    async def make_writable(self) -> None:
        """Checked only: the lake is created by its first load, through the sync."""
        await anyio.to_thread.run_sync(self.target.check_lake_usable, limiter=self._limiter)

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


def open_ledgers(target: Target, *, must_exist: bool, wait: float = 0.0,
                 on_wait: Callable[[str], None] = lambda message: None) -> BackfillLedgers:
    """The target's ledgers, read-only in effect (nothing is created or written yet); a
    database that another process has open is refused here (StoreLockedError), once.
    `must_exist`: a target that does not exist is a ConfigError (`--gaps` has no coverage
    to fill there). `wait`, `on_wait`: a database's later opens (DatabaseLedgers)."""
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
    if exists:
        target.connect_ledger().close()   # free now, or StoreLockedError naming the holder
    return DatabaseLedgers(target, wait=wait, on_wait=on_wait)
