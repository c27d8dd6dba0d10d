"""A lake's own files are hostile input (issue 16, part A): whoever can write the lake's storage
can craft its ledger table, the folders at its root and what lies in `_csload/`. Each test
crafts one attack on a lake a real `ParquetStore` made, then checks that opening the store,
`csload.connect` and `csload status` either refuse it with a StoreError that names the lake and
what is wrong (showing none of csload's SQL), or are unaffected; and that nothing outside the
lake root is touched (a canary folder beside it, whose files are old enough for any vacuum).
The data tables (their Delta logs, their folders) are attacked in test_lake_hostile_delta.py,
with the helpers defined here.

    test_hostile_state_*          the ledger's `_csload_lake` row (csload.lake.state)
    test_hostile_ledger_*         the ledger table's rows and Parquet blobs (csload.lake.ledger)
    test_hostile_own_folder_*     symbolic links inside `_csload/`

"""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from csload.errors import StoreError
from csload.lake.layout import LEDGER_TABLE_DIR
from csload.lake.ledger import STATE_ROW
from tests.support.children import child_environ
from tests.support.hostile_lake import (
    DAY,
    VIEWS,
    Crafted,
    assert_outside_untouched,
    assert_refused,
    assert_unaffected,
    read_views,
    sync_one_run,
    tree,
)


def ledger_rows(root: Path) -> list[tuple[str, bytes]]:
    data = DeltaTable(str(root / LEDGER_TABLE_DIR)).to_pyarrow_table()
    return list(zip(data.column("name").to_pylist(), data.column("data").to_pylist(),
                    strict=True))


def overwrite_ledger(root: Path, data: pa.Table, *, new_schema: bool = False) -> None:
    """Replace the ledger table's rows, as another Delta writer would (one commit)."""
    write_deltalake(str(root / LEDGER_TABLE_DIR), data, mode="overwrite",
                    schema_mode="overwrite" if new_schema else None)


def write_ledger_rows(root: Path, rows: list[tuple[str, bytes]]) -> None:
    overwrite_ledger(root, pa.table({"name": pa.array([n for n, _ in rows], pa.string()),
                                     "data": pa.array([b for _, b in rows], pa.binary())}))


def replace_row(root: Path, name: str, blob: bytes) -> None:
    write_ledger_rows(root, [(n, blob if n == name else b) for n, b in ledger_rows(root)])


def row_of(root: Path, name: str) -> bytes:
    return dict(ledger_rows(root))[name]


def change_state(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the `_csload_lake` row's JSON (the standard json module: integers of any size)."""
    state = json.loads(row_of(root, STATE_ROW))
    change(state)
    replace_row(root, STATE_ROW, json.dumps(state).encode())


def views_runs(state: dict[str, Any]) -> dict[str, Any]:
    """The run counts of the views' one partition, in a state row."""
    runs: dict[str, Any] = state["tables"]["views"]["partitions"][DAY.isoformat()]
    return runs


def parquet_bytes(data: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(data, sink)
    return bytes(sink.getvalue().to_pybytes())


# --- the `_csload_lake` row --------------------------------------------------------------------

def _rename_views(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda s: s["tables"].__setitem__(name, s["tables"].pop("views"))


STATE_NAMES = {"sql": "views; drop", "dotdot": "../views", "own folder": "_csload",
               "uppercase": "Views"}


@pytest.mark.parametrize("how", STATE_NAMES)
@pytest.mark.hostile("the ledger's lake state names a table `views; drop`, `../views`, "
                     "`_csload` or `Views`",
                     "refused as tampered (table name) by open, connect and status")
def test_hostile_state_table_name(crafted: Crafted, how: str) -> None:
    change_state(crafted.root, _rename_views(STATE_NAMES[how]))
    assert_refused(crafted, "table name", STATE_NAMES[how])


@pytest.mark.parametrize("key", ["../x", "2026-02-30", "date=2026-11-20", "2026-11-20/../x"])
@pytest.mark.hostile("the ledger's lake state gives a table a partition key that is a path or "
                     "not a day",
                     "refused as tampered (partition), nothing outside the root touched")
def test_hostile_state_partition_key(crafted: Crafted, key: str) -> None:
    change_state(crafted.root,
                 lambda s: s["tables"]["views"]["partitions"].__setitem__(key, {"10": 1}))
    assert_refused(crafted, "partition", key)


def _set_count(value: object) -> Callable[[dict[str, Any]], None]:
    return lambda s: views_runs(s).__setitem__("10", value)


def _set_run_id(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda s: views_runs(s).__setitem__(value, views_runs(s).pop("10"))


NUMBERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "negative count": (_set_count(-1), "row count -1"),
    "count above 2^63-1": (_set_count(2**63), f"row count {2**63}"),
    "huge count": (_set_count(10**30), "row count 1e+30"),   # orjson: a float
    "count as a float": (_set_count(2.5), "row count 2.5"),
    "count as null": (_set_count(None), "row count None"),
    "run id above 2^64-1": (_set_run_id(str(2**64)), f"run id '{2**64}'"),
    "negative run id": (_set_run_id("-10"), "run id '-10'"),
    "run id not a number": (_set_run_id("10; DROP TABLE views"),
                            "run id '10; DROP TABLE views'"),
    "negative version": (lambda s: s["tables"]["views"].__setitem__("version", -1),
                         "table version -1"),
    "negative batch": (lambda s: s.__setitem__("batch", -1), "batch number -1"),
}


@pytest.mark.parametrize("how", NUMBERS)
@pytest.mark.hostile("the ledger's lake state with a negative or huge row count, a run id above "
                     "2^64-1 or not a number, a negative version or batch",
                     "refused as tampered, naming the number")
def test_hostile_state_numbers_out_of_range(crafted: Crafted, how: str) -> None:
    change, words = NUMBERS[how]
    change_state(crafted.root, change)
    assert_refused(crafted, words)


@pytest.mark.hostile("the ledger's lake state gives a day more rows of a run than its files hold, "
                     "then a re-run replaces that day",
                     "the re-run refused as tampered before any rule ran; the lake unchanged")
def test_hostile_state_counts_of_a_replaced_day(crafted: Crafted) -> None:
    # The re-run's day is read by its keys only (csload.lake.work.read_replaced), trusting
    # the state to say which rows it removes: rows the state does not account for are refused.
    change_state(crafted.root, _set_count(5))   # the files hold 2
    with pytest.raises(StoreError, match="other rows than its ledger says"):
        sync_one_run(crafted)
    assert read_views(crafted.lake) == VIEWS
    assert_outside_untouched(crafted)


@pytest.mark.hostile("the ledger's lake state records a table version newer than the table's "
                     "log",
                     "refused by open, connect and status, naming the table and the version")
def test_hostile_state_version_newer_than_the_log(crafted: Crafted) -> None:
    # The message is deltalake's ("LogSegment end version 0 not the same as the specified end
    # version 5"); csload's own "damaged ... older than its ledger's" check in recovery is
    # never reached, because the snapshot is read at the recorded version first.
    change_state(crafted.root, lambda s: s["tables"]["views"].__setitem__("version", 5))
    assert_refused(crafted, "views", "version 5")


# A child process: a lake open that spins is killed by its CPU budget, not waited for.
_OPEN_IN_CHILD = """
import sys
from csload.errors import StoreError
from csload.lake import connect_lake
try:
    connect_lake(sys.argv[1], env={})
except StoreError as exc:
    print(exc)
    sys.exit(0)
sys.exit(3)
"""
CPU_BUDGET_SECONDS = 20   # a refusal takes ~2 s of CPU, imports included


def _cpu_budget() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_BUDGET_SECONDS, CPU_BUDGET_SECONDS + 5))


@pytest.mark.hostile("the ledger's lake state records table version 2^63-1 (in range for "
                     "csload's check, far beyond the log)",
                     "refused at once (`damaged`): the latest version is read first and compared "
                     "before any version the ledger names is loaded")
def test_hostile_state_version_far_beyond_the_log(crafted: Crafted) -> None:
    change_state(crafted.root,
                 lambda s: s["tables"]["views"].__setitem__("version", 2**63 - 1))
    child = subprocess.run(
        [sys.executable, "-c", _OPEN_IN_CHILD, str(crafted.root)],
        env=child_environ(), capture_output=True, text=True, preexec_fn=_cpu_budget,
        timeout=600, check=False)
    assert child.returncode == 0, (
        f"connect did not refuse within {CPU_BUDGET_SECONDS} s of CPU (exit "
        f"{child.returncode}): {child.stdout}{child.stderr}")
    assert "views" in child.stdout and str(crafted.root) in child.stdout


STATE_TEXTS = {"invalid JSON": b"{not json", "a list": b"[1, 2]",
               "another format": b'{"format": 2, "batch": 1, "tables": {}}',
               "tables not an object": b'{"format": 1, "batch": 1, "tables": "views"}',
               "empty": b""}


@pytest.mark.parametrize("how", STATE_TEXTS)
@pytest.mark.hostile("the ledger's lake state row is invalid JSON, not an object, or of "
                     "another format",
                     "refused as tampered (lake state)")
def test_hostile_state_not_csloads(crafted: Crafted, how: str) -> None:
    replace_row(crafted.root, STATE_ROW, STATE_TEXTS[how])
    assert_refused(crafted, "lake state")


@pytest.mark.hostile("the ledger's lake state names a table that has no folder at all",
                     "taken for a table the user deleted: readers unaffected; the next sync "
                     "forgets it and loads its runs again (here none); nothing outside "
                     "touched")
def test_hostile_state_table_without_a_folder(crafted: Crafted) -> None:
    change_state(crafted.root, lambda s: s["tables"].__setitem__(
        "ghost", {"version": 0, "partitions": {}}))
    assert_unaffected(crafted)   # its open forgets the table
    assert "ghost" not in crafted.lake.snapshot().state.tables
    assert not (crafted.root / "ghost").exists()


@pytest.mark.hostile("the ledger's lake state names a table whose folder has files but no "
                     "Delta log",
                     "refused: the lake is called damaged, naming the table")
def test_hostile_state_table_without_a_log(crafted: Crafted) -> None:
    change_state(crafted.root, lambda s: s["tables"].__setitem__(
        "ghost", {"version": 0, "partitions": {}}))
    (crafted.root / "ghost" / "date=2026-11-20").mkdir(parents=True)
    (crafted.root / "ghost" / "date=2026-11-20" / "a.parquet").write_bytes(b"PAR1")
    assert_refused(crafted, "ghost", "damaged")


# --- the ledger table's rows and blobs ---------------------------------------------------------

@pytest.mark.hostile("a ledger blob (`_csload_runs`) that is not Parquet",
                     "refused: that ledger table is called damaged or tampered with")
def test_hostile_ledger_blob_not_parquet(crafted: Crafted) -> None:
    replace_row(crafted.root, "_csload_runs", b"PAR1 this is not a Parquet file PAR1")
    assert_refused(crafted, "_csload_runs", "tampered")


@pytest.mark.hostile("a ledger blob whose run ids are text carrying SQL "
                     "(`1; DROP TABLE views`)",
                     "read as data and cast to csload's types: refused as damaged; no SQL runs")
def test_hostile_ledger_blob_of_the_wrong_types(crafted: Crafted) -> None:
    replace_row(crafted.root, "_csload_runs", parquet_bytes(pa.table({
        "run_id": ["1; DROP TABLE views"], "status": ["loaded"]})))
    assert_refused(crafted, "_csload_runs", "damaged")


@pytest.mark.hostile("a ledger blob with an extra column named to break out of SQL "
                     "(`x\"; COPY ... TO 'file'; --`)",
                     "unaffected: only the columns csload knows are read, by its own names")
def test_hostile_ledger_blob_column_names_are_not_used(crafted: Crafted) -> None:
    runs = pq.read_table(pa.BufferReader(row_of(crafted.root, "_csload_runs")))
    evil = f"x\" VARCHAR); COPY (SELECT 42) TO '{crafted.pwned}' (FORMAT csv); --"
    runs = runs.append_column(evil, pa.array(["boom"] * runs.num_rows))
    replace_row(crafted.root, "_csload_runs", parquet_bytes(runs))
    assert_unaffected(crafted)


@pytest.mark.hostile("two ledger rows with the same name (a second `_csload_meta`)",
                     "refused as tampered, naming the row")
def test_hostile_ledger_row_given_twice(crafted: Crafted) -> None:
    rows = ledger_rows(crafted.root)
    meta = next(r for r in rows if r[0] == "_csload_meta")
    write_ledger_rows(crafted.root, [*rows, (meta[0], b"another meta")])
    assert_refused(crafted, "_csload_meta", "tampered")


@pytest.mark.hostile("a ledger table whose columns are of other types (name BIGINT, data "
                     "STRING)",
                     "refused as tampered")
def test_hostile_ledger_columns_of_other_types(crafted: Crafted) -> None:
    overwrite_ledger(crafted.root, pa.table({"name": pa.array([1, 2]),
                                             "data": pa.array(["a", "b"])}), new_schema=True)
    assert_refused(crafted, "tampered")


@pytest.mark.hostile("a ledger without its `_csload_runs` row",
                     "refused: the lake is called damaged, naming the missing ledger table")
def test_hostile_ledger_row_missing(crafted: Crafted) -> None:
    write_ledger_rows(crafted.root,
                      [r for r in ledger_rows(crafted.root) if r[0] != "_csload_runs"])
    assert_refused(crafted, "_csload_runs", "damaged")


@pytest.mark.hostile("a ledger row csload does not know, named `_csload_x; DROP TABLE views`",
                     "unaffected: rows are looked up by csload's names, others ignored")
def test_hostile_ledger_unknown_row_is_ignored(crafted: Crafted) -> None:
    write_ledger_rows(crafted.root, [*ledger_rows(crafted.root),
                                     ("_csload_x; DROP TABLE views", b"whatever")])
    assert_unaffected(crafted)


# --- symbolic links inside _csload/ ---------------------------------------------------------------

def _move_out_and_link(c: Crafted, rel: str) -> None:
    """Move `rel` of the lake to the canary folder and leave a link to it in its place."""
    inside = c.root / rel
    moved = c.outside / "moved" / rel.replace("/", "_")
    shutil.copytree(inside, moved)
    shutil.rmtree(inside)
    inside.symlink_to(moved, target_is_directory=True)
    c.before = tree(c.outside)


@pytest.mark.parametrize("rel", ["_csload", LEDGER_TABLE_DIR])
@pytest.mark.hostile("`_csload/` or the ledger table's folder is a symbolic link to a copy "
                     "outside the lake",
                     "refused (csload follows no link inside _csload/); the copy untouched")
def test_hostile_own_folder_linked_outside(crafted: Crafted, rel: str) -> None:
    _move_out_and_link(crafted, rel)
    assert_refused(crafted, "symbolic link")


@pytest.mark.hostile("the ledger table's `_delta_log` is a symbolic link to a folder outside "
                     "the lake",
                     "refused (`symbolic link`) before deltalake opens the folder: nothing "
                     "read or written outside the lake")
def test_hostile_own_folder_ledger_log_linked_outside(crafted: Crafted) -> None:
    _move_out_and_link(crafted, f"{LEDGER_TABLE_DIR}/_delta_log")
    with contextlib.suppress(StoreError):   # a refusal is what should happen
        sync_one_run(crafted)
    assert_refused(crafted, "symbolic link")   # and nothing written outside by the sync


@pytest.mark.hostile("a symbolic link inside the ledger table's folder to a folder outside the "
                     "lake holding old files",
                     "refused (`symbolic link`) before any commit or vacuum: the files "
                     "outside the lake stay")
def test_hostile_own_folder_link_inside_the_ledger_table(crafted: Crafted) -> None:
    (crafted.root / LEDGER_TABLE_DIR / "junk").symlink_to(crafted.outside,
                                                          target_is_directory=True)
    with contextlib.suppress(StoreError):
        sync_one_run(crafted)
    assert_outside_untouched(crafted)
