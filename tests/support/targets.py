"""The two targets a reliability suite runs into, behind one interface: a DuckDB file and a
local Delta lake. A suite parametrized by `SyncTarget` runs each case into both and checks,
after each sync, what that target's reader sees; what differs is here, not in copies of the
tests.

    target.sync_to      the keyword of csload.sync: {"db": path} or {"parquet": root}
    target.compare      rows against the simulator's truth (relkit.compare / compare_lake)
    target.statuses     run id -> ledger status
    target.run_message  (status, message) of one run in the ledger, or None
    target.assert_tidy  no staging folder left (and, for a lake, no stray or missing file)
    target.staging      the folder a sync stages its downloads in
    target.summary      the fields a summary entry carries: a lake's carry target="parquet",
                        which render_results.py puts in the lake's section of reliability.md
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from csload.pipeline.sync import staging_dir
from csload.simulator import Simulator
from tests.support.lakekit import (
    assert_lake_tidy,
    compare_lake,
    downloads_dir,
    lake_run_message,
    lake_runs,
)
from tests.support.relkit import Accounting, compare

TARGETS = ("duckdb", "parquet")


class SyncTarget:
    def __init__(self, kind: str, folder: Path) -> None:
        assert kind in TARGETS, kind
        self.kind = kind
        self.path = folder / ("cs.duckdb" if kind == "duckdb" else "lake")

    @property
    def is_lake(self) -> bool:
        return self.kind == "parquet"

    @property
    def sync_to(self) -> dict[str, Path]:
        return {"parquet": self.path} if self.is_lake else {"db": self.path}

    @property
    def summary(self) -> dict[str, str]:
        return {"target": "parquet"} if self.is_lake else {}

    @property
    def staging(self) -> Path:
        return downloads_dir(self.path) if self.is_lake else staging_dir(self.path)

    def compare(self, sim: Simulator, run_ids: Sequence[int],
                expected: Any | None = None) -> Accounting:
        if self.is_lake:
            return compare_lake(self.path, sim, run_ids, expected)
        return compare(self.path, sim, run_ids, expected)

    def _ledger(self) -> list[tuple[int, str, str | None]]:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            return [(int(r[0]), r[1], r[2]) for r in con.execute(
                "SELECT run_id, status, message FROM _csload.runs").fetchall()]
        finally:
            con.close()

    def statuses(self) -> dict[int, str]:
        if self.is_lake:
            return lake_runs(self.path)
        return {run: status for run, status, _ in self._ledger()}

    def run_message(self, run_id: int) -> tuple[str, str] | None:
        if self.is_lake:
            return lake_run_message(self.path, run_id)
        found = [(status, message or "") for run, status, message in self._ledger()
                 if run == run_id]
        return found[0] if found else None

    def assert_tidy(self) -> None:
        if self.is_lake:
            assert_lake_tidy(self.path)
        else:
            assert not staging_dir(self.path).exists()
