"""`csload sync` stopped by an error after it committed a batch: the error, and what stays.

A lake sync commits each batch (one table's runs) on its own; a later batch can still fail (a
second writer's commit in between: LakeConflict; a full disk). The runs committed before it
are in the lake and stay, and the next sync loads exactly the rest. The error line alone (exit
1, "failed before loading anything" in the README until 2026-12-07) hid them: now a line after
it, and the JSON error object, name them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from csload.lake.store import ParquetStore
from csload.simulator import Simulator
from tests.support.lakekit import compare_lake
from tests.support.syncref import successful_runs


class SecondBatchLoses:
    """From `arm()` on, at the next sync's second batch's ledger commit (its table's commit
    made), another sync opens the lake and commits first: real commits, so the sync's own
    fails with LakeConflict. Once per `arm()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: int | None = None
        apply, commit_ledger = ParquetStore.apply, ParquetStore._commit_ledger

        def counted(store: ParquetStore, runs: Any) -> Any:
            if self.batches is not None:
                self.batches += 1
            return apply(store, runs)

        def second_loses(store: ParquetStore, *args: Any) -> Any:
            if self.batches == 2:
                self.batches = None
                with ParquetStore.open(store.root) as other:
                    other._publish()
            return commit_ledger(store, *args)

        monkeypatch.setattr(ParquetStore, "apply", counted)
        monkeypatch.setattr(ParquetStore, "_commit_ledger", second_loses)

    def arm(self) -> None:
        self.batches = 0


def lake_loaded_runs(root: Path) -> set[int]:
    with ParquetStore.open(str(root)) as store:
        return store.loaded_runs()


def test_the_runs_committed_before_the_error_are_named_and_stay(
        simulator: Simulator, cli: Callable[..., Result], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "lake"
    conflict = SecondBatchLoses(monkeypatch)
    conflict.arm()
    first = cli("sync", "--parquet", str(root), "--json")
    assert first.exit_code == 1, first.output
    document = json.loads(first.stdout)
    assert document["error"]["kind"] == "LakeConflict", document
    assert "another process committed to the lake" in document["error"]["message"]
    committed = {r["runId"] for r in document["runs"]}
    assert committed and document["runsLoaded"] == len(committed)
    assert document["rows"] == sum(r["rows"] for r in document["runs"]) > 0
    # What the report says was committed is what the lake holds, row for row.
    assert lake_loaded_runs(root) == committed
    compare_lake(root, simulator, sorted(committed)).assert_exact()
    assert committed < set(successful_runs(simulator))   # the second batch did not count

    # The same on a terminal: the error line, then the runs that stay.
    root2 = tmp_path / "lake2"
    conflict.arm()
    text = cli("sync", "--parquet", str(root2))
    assert text.exit_code == 1, text.output
    lines = [line for line in text.stderr.splitlines() if line.strip()]
    error_at = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    after = " ".join(lines[error_at + 1:])
    runs = len(lake_loaded_runs(root2))
    assert after.startswith(f"before the error: {runs} run"), text.stderr
    assert "loaded and committed" in after and "loads exactly the rest" in after

    # The next sync loads exactly the rest.
    again = cli("sync", "--parquet", str(root), "--json")
    assert again.exit_code == 0, again.output
    loaded = {r["runId"] for r in json.loads(again.stdout)["runs"] if r["status"] == "loaded"}
    assert loaded.isdisjoint(committed)
    assert committed | loaded == set(successful_runs(simulator))
    compare_lake(root, simulator, sorted(committed | loaded)).assert_exact()


def test_an_error_before_anything_is_committed_says_nothing_more(
        cli: Callable[..., Result], tmp_path: Path) -> None:
    failed = cli("sync", "--parquet", "/proc/csload-lake", "--json")
    assert failed.exit_code == 1, failed.output
    assert set(json.loads(failed.stdout)) == {"error"}
    assert "before the error" not in failed.stderr
