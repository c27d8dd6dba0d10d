"""The lake uses the DuckDB loader by composition: through its hooks (csload.load.hooks), never
by subclassing the store or reaching for a private name of the load stage."""

from __future__ import annotations

import ast
import inspect
from datetime import date
from pathlib import Path

import csload.lake
import csload.load
from csload.lake.store import ParquetStore
from csload.lake.work import LakeReads
from csload.load.duckdb import DuckDBStore
from csload.load.hooks import BatchHooks, DuckDBFileHooks
from tests.support.memcap import cap_of, shown
from tests.support.partgen import Writer, job, run

LAKE = Path(csload.lake.__file__).parent
LOAD = Path(csload.load.__file__).parent


def _private_imports(folder: Path, other: str) -> list[str]:
    """`from csload.<other>... import _name` in the modules of `folder`."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith(f"csload.{other}")):
                found += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_")]
    return found


def test_no_private_name_crosses_between_the_load_stage_and_the_lake() -> None:
    assert _private_imports(LAKE, "load") == []
    assert _private_imports(LOAD, "lake") == []


def test_no_lake_class_extends_the_duckdb_store() -> None:
    import csload.lake.recovery
    import csload.lake.store
    import csload.lake.work

    classes = [obj for module in (csload.lake.store, csload.lake.work, csload.lake.recovery)
               for _, obj in inspect.getmembers(module, inspect.isclass)
               if obj.__module__.startswith("csload.lake")]
    assert ParquetStore in classes and LakeReads in classes
    assert [c.__name__ for c in classes if issubclass(c, DuckDBStore)] == []


def test_both_targets_implement_every_hook() -> None:
    hooks = {name for name in dir(BatchHooks) if not name.startswith("_")}
    assert hooks == {"memory_limit", "json_memory_limit", "column_problem", "rows_inserted",
                     "committed", "rolled_back"}
    for target in (DuckDBFileHooks, LakeReads):
        assert hooks <= set(dir(target)), target


def test_the_work_database_has_the_lakes_cap_before_and_after_a_failed_batch(
        tmp_path: Path) -> None:
    """The lake's work database runs under LakeReads.memory_limit (lower than a DuckDB
    file's), also after a batch that failed and rolled back."""
    assert LakeReads.memory_limit != DuckDBFileHooks.memory_limit
    with ParquetStore.open(tmp_path / "lake") as store:
        assert cap_of(store._work.con) == shown(LakeReads.memory_limit)
        (tmp_path / "parts").mkdir()
        writer = Writer(tmp_path / "parts")
        bad = writer.staged(job(1, fields=["session_id", "view_number", "view_time", "url"]),
                            run(10, 1, date(2026, 11, 20)),
                            [[{"session_id": "not a number", "view_number": 1,
                               "view_time": "2026-11-20 12:00:00", "url": "a"}]])
        [outcome] = store.apply([bad])
        assert outcome.status == "failed"
        assert cap_of(store._work.con) == shown(LakeReads.memory_limit)
