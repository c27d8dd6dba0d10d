"""What the ledger knows of the lake's tables, beside the runs: `LakeState`.

Stored in the ledger (csload.lake.ledger) as the row `_csload_lake`, JSON:

    {"format": 1, "batch": 42,
     "tables": {"views": {"version": 17,
                          "partitions": {"2026-11-20": {"8812": 5120}, ...}}}}

* `batch`: the number of the lake's last published batch; every commit of the next one carries
  application transaction ("csload", batch + 1).
* `version`: the Delta version of the table that the ledger agrees with. The table's log may
  be ahead of it only after a crash between the table's commit and the ledger's; the next
  sync restores the table to this version (csload.lake.recovery). Readers going through csload
  read each table at this version.
* `partitions`: per partition, the rows of each run: where a run's rows are when a re-run
  replaces them (the window rule).

Whoever can write the storage can write this row: it is checked whole before use (table
names, partition keys, counts and run ids in range); anything else is a StoreError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from csload.lake.layout import check_partition_key, check_table, damaged

FORMAT = 1
_MAX_ID = 2**64 - 1   # run ids are UBIGINT


def _count(value: object, where: str, what: str, limit: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise damaged(where, what, value)
    number = value
    if not 0 <= number <= limit:
        raise damaged(where, what, value)
    return number


def _run_id(key: str, where: str) -> int:
    """A run id as a JSON key: ASCII digits only, in UBIGINT's range."""
    if not (key.isascii() and key.isdigit() and len(key) <= 20) or int(key) > _MAX_ID:
        raise damaged(where, "run id", key)
    return int(key)


@dataclass
class TableState:
    version: int
    partitions: dict[str, dict[int, int]] = field(default_factory=dict)

    def run_partitions(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for key, runs in self.partitions.items():
            for run_id in runs:
                out.setdefault(run_id, set()).add(key)
        return out

    @property
    def rows(self) -> int:
        return sum(sum(runs.values()) for runs in self.partitions.values())


@dataclass
class LakeState:
    batch: int = 0
    tables: dict[str, TableState] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "format": FORMAT, "batch": self.batch,
            "tables": {name: {"version": t.version,
                              "partitions": {k: {str(r): n for r, n in sorted(runs.items())}
                                             for k, runs in sorted(t.partitions.items())}}
                       for name, t in sorted(self.tables.items())}})

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> LakeState:
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise damaged(where, "lake state", raw[:40]) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT \
                or not isinstance(data.get("tables"), dict):
            raise damaged(where, "lake state", data)
        tables: dict[str, TableState] = {}
        for name, entry in data["tables"].items():
            table = check_table(name, where)
            if not isinstance(entry, dict) or not isinstance(entry.get("partitions"), dict):
                raise damaged(where, f"state of table {table}", entry)
            partitions: dict[str, dict[int, int]] = {}
            for key, runs in entry["partitions"].items():
                if not isinstance(runs, dict):
                    raise damaged(where, f"partition {key} of table {table}", runs)
                partitions[check_partition_key(key, where)] = {
                    _run_id(r, where): _count(n, where, "row count") for r, n in runs.items()}
            tables[table] = TableState(_count(entry.get("version"), where, "table version"),
                                       partitions)
        return cls(_count(data.get("batch"), where, "batch number"), tables)
