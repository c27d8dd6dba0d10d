"""What a target adds to the DuckDB store's steps: the interface the lake composes with.

The DuckDB store (csload.load.duckdb) applies a table's batch in one transaction:

    ensure the table  ->  insert the parts  ->  rows_inserted  ->  key rule, window rule
                      ->  ledger rows       ->  COMMIT -> committed   (or ROLLBACK -> rolled_back)

For a DuckDB file the table IS the target: `DuckDBFileHooks` adds nothing. The Delta lake
(csload.lake.work.LakeReads) applies its batches in a scratch DuckDB database that holds
only the partitions a batch can change, so it needs five things of the store, and this
protocol is all it gets (no private method of the store is overridden or called):

* `memory_limit`: the database's DuckDB memory cap (csload.load.memory); the lake's is lower
  (its process also holds deltalake and pyarrow).
* `json_memory_limit`: the cap for a JSONL statement (csload.load.memory); the lake keeps
  one cap (None): its process is at the peak RSS budget already.
* `column_problem`: a column name the target cannot hold (the lake's partition column),
  checked before the table is made to fit: the run that brings it fails alone.
* `rows_inserted`: called with the batch's rows inserted and before the supersede rules,
  inside the transaction: the lake reads in the partitions those rules may change.
* `committed` / `rolled_back`: the end of every transaction of the store (a batch, or a
  failed run recorded), so the target can keep or forget what that transaction read in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import duckdb

from csload.errors import ConfigError
from csload.load.columns import JobLayout
from csload.load.ledger import Ledger
from csload.load.memory import JSON_MEMORY_LIMIT, MEMORY_LIMIT
from csload.load.supersede import RunWindow

if TYPE_CHECKING:   # annotations only: this module runs no code of csload.load.batch
    from csload.load.batch import PendingRun


@dataclass(frozen=True)
class InsertedBatch:
    """A table's batch whose rows are inserted, inside the open transaction."""

    con: duckdb.DuckDBPyConnection
    ledger: Ledger
    table: str
    runs: Sequence[PendingRun]

    @property
    def ids(self) -> str:
        """The batch's run ids, comma-separated, for SQL."""
        return ", ".join(str(item.run_id) for item in self.runs)

    @property
    def job_ids(self) -> set[int]:
        return {item.layout.job_id for item in self.runs}

    @property
    def layouts(self) -> list[JobLayout]:
        return [item.layout for item in self.runs]

    def windows(self) -> list[RunWindow]:
        return [item.window for item in self.runs]


class BatchHooks(Protocol):
    """What a target does at the DuckDB store's steps (the module docstring says when)."""

    @property
    def memory_limit(self) -> str: ...

    @property
    def json_memory_limit(self) -> str | None: ...

    def column_problem(self, job_id: int, names: set[str]) -> ConfigError | None: ...

    def rows_inserted(self, batch: InsertedBatch) -> None: ...

    def committed(self) -> None: ...

    def rolled_back(self) -> None: ...


class DuckDBFileHooks:
    """The DuckDB file target: the table is the target, so nothing is added."""

    memory_limit: str = MEMORY_LIMIT
    json_memory_limit: str | None = JSON_MEMORY_LIMIT

    def column_problem(self, job_id: int, names: set[str]) -> ConfigError | None:
        return None

    def rows_inserted(self, batch: InsertedBatch) -> None:
        return None

    def committed(self) -> None:
        return None

    def rolled_back(self) -> None:
        return None
