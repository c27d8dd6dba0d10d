"""The data tables of a lake are hostile input (issue 16, part A): each is a Delta table whose
log (`ROOT/<table>/_delta_log/*.json`) whoever can write the storage can rewrite: its schema
string (column types and names, the partition column), its add actions (paths, partition
values, stats), and commits appended after the version the ledger records. Each test crafts
one on a lake a real `ParquetStore` made (helpers and checks: test_lake_hostile.py) and checks
that opening the store, connect and status refuse it with a StoreError naming the lake and what
is wrong, or are unaffected; that no crafted name or type reaches DuckDB as SQL; and that
nothing outside the lake root is touched.

    test_hostile_log_*        the schema and add actions of the version the ledger records
    test_hostile_appended_*   a crafted commit after that version
    test_hostile_root_*       folders at the root: tables csload did not make, links
    test_hostile_table_*      symbolic links inside a table's folder
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from csload.errors import StoreError
from csload.lake.fs import LakeFS
from tests.support.hostile_lake import (
    DAY,
    RAW_SQL,
    TABLE_ROWS,
    VIEW_FIELDS,
    VIEWS,
    Crafted,
    assert_outside_untouched,
    assert_refused,
    assert_unaffected,
    open_and_close,
    read_views,
    refusal,
    sync_one_run,
    tree,
    view_row,
)
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run
from tests.support.s3server import S3Server

Actions = list[dict[str, Any]]




# --- crafting a log ----------------------------------------------------------------------------

def log_file(root: Path, table: str, version: int) -> Path:
    return root / table / "_delta_log" / f"{version:020d}.json"


def read_actions(root: Path, table: str, version: int = 0) -> Actions:
    text = log_file(root, table, version).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_actions(root: Path, table: str, version: int, actions: Actions) -> None:
    log_file(root, table, version).write_text("".join(json.dumps(a) + "\n" for a in actions))


def rewrite_log(root: Path, change: Callable[[Actions], None], table: str = "views") -> None:
    """Rewrite the commit the ledger records (version 0) in place."""
    actions = read_actions(root, table)
    change(actions)
    write_actions(root, table, 0, actions)


def the(actions: Actions, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a[kind] for a in actions if kind in a)
    return found


def change_schema(change: Callable[[list[dict[str, Any]], dict[str, Any]], None]
                  ) -> Callable[[Actions], None]:
    """A log change applying `change(fields, metaData)` to the schema string."""
    def apply(actions: Actions) -> None:
        meta = the(actions, "metaData")
        schema = json.loads(meta["schemaString"])
        change(schema["fields"], meta)
        meta["schemaString"] = json.dumps(schema)
    return apply


def change_field(column: str, **values: Any) -> Callable[[Actions], None]:
    def change(fields: list[dict[str, Any]], _meta: dict[str, Any]) -> None:
        next(f for f in fields if f["name"] == column).update(values)
    return change_schema(change)


def change_add(**values: Any) -> Callable[[Actions], None]:
    return lambda actions: the(actions, "add").update(values)


# --- the schema string ---------------------------------------------------------------------------

TYPES: dict[str, tuple[Any, str]] = {
    "map": ({"type": "map", "keyType": "string", "valueType": "string",
             "valueContainsNull": True}, "'map'"),
    "struct": ({"type": "struct", "fields": [
        {"name": "a", "type": "string", "nullable": True, "metadata": {}}]}, "'struct'"),
    "interval": ("interval", "'interval'"),
    "binary": ("binary", "'binary'"),
    "varchar(3)": ("varchar(3)", "'varchar(3)'"),
    "timestamp_ntz": ("timestamp_ntz", "TIMESTAMP_NTZ"),
    "decimal(38,0)": ("decimal(38,0)", "'decimal(38,0)'"),
    "array of arrays": ({"type": "array", "elementType": {
        "type": "array", "elementType": "string", "containsNull": True},
        "containsNull": True}, "'array'"),
}


@pytest.mark.parametrize("how", TYPES)
@pytest.mark.hostile("a table's log gives a column a type csload never writes (map, struct, "
                     "interval, binary, varchar(3), timestamp_ntz, decimal(38,0), nested "
                     "arrays)",
                     "refused naming the type, by deltalake or by csload's closed list of "
                     "types; nothing reaches DuckDB")
def test_hostile_log_column_type(crafted: Crafted, how: str) -> None:
    kind, shown = TYPES[how]
    rewrite_log(crafted.root, change_field("url", type=kind))
    assert_refused(crafted, "views", shown)


NAMES = {"quote": ('url"; DROP TABLE views; --', """column name 'url"; DROP TABLE"""),
         "uppercase": ("URL", "column name 'URL'"),
         "leading underscore": ("_evil", "column name '_evil'"),
         "the partition column": ("date", "Duplicate field name (case-insensitive): 'date'"),
         "empty": ("", "column name ''"),
         "too long": ("u" * 256, "column name 'uuuu")}


@pytest.mark.parametrize("how", NAMES)
@pytest.mark.hostile("a table's log gives a column a name with a quote, in uppercase, with a "
                     "leading `_` (not a lineage column), the partition column's, empty or "
                     "too long",
                     "refused naming the column (csload's shape of names, or deltalake's "
                     "duplicate check)")
def test_hostile_log_column_name(crafted: Crafted, how: str) -> None:
    name, shown = NAMES[how]
    rewrite_log(crafted.root, change_field("url", name=name))
    assert_refused(crafted, "views", shown)


@pytest.mark.parametrize("where", ["type", "name"])
@pytest.mark.hostile("a table's log gives a column a type or a name carrying SQL "
                     "(`string); COPY ... TO 'file'; --`)",
                     "refused before csload builds any SQL from the log (deltalake rejects the "
                     "type, csload the name); the file is not written")
def test_hostile_log_column_carrying_sql(crafted: Crafted, where: str) -> None:
    # csload builds CREATE TABLE / CREATE VIEW / SELECT lists from the log's names and types.
    copy = f"COPY (SELECT 42) TO '{crafted.pwned}' (FORMAT csv)"
    if where == "type":
        change, shown = change_field("url", type=f"string); {copy}; --"), "table type"
    else:
        change, shown = change_field("url", name=f'url" VARCHAR); {copy}; --'), "column name"
    rewrite_log(crafted.root, change)
    assert_refused(crafted, "views", shown)   # assert_outside_untouched: no pwned file


PARTITIONING = {
    "not partitioned": (lambda fields, meta: meta.update(partitionColumns=[]), "data file"),
    "by another column": (lambda fields, meta: meta.update(partitionColumns=["url"]),
                          "Partition column date not found"),
}


@pytest.mark.parametrize("how", PARTITIONING)
@pytest.mark.hostile("a table's log that is not partitioned by `date`, or by another column",
                     "refused: its files do not sit in the partitions the log gives them")
def test_hostile_log_partition_column(crafted: Crafted, how: str) -> None:
    change, shown = PARTITIONING[how]
    rewrite_log(crafted.root, change_schema(change))
    assert_refused(crafted, "views", shown)


# --- add actions: paths, partition values, stats ------------------------------------------------

def _paths(c: Crafted) -> dict[str, str]:
    part = the(read_actions(c.root, "views"), "add")["path"]   # date=.../part-<txid>-0.parquet
    target = c.outside / "precious.txt"
    return {"dotdot": "date=2026-11-20/../../../outside/precious.txt",
            "absolute": str(target), "file uri": target.as_uri(),
            "another table": f"../pages/{part}",
            "another table, absolute": str(c.root / "pages" / part),
            "a name of unsafe characters": "date=2026-11-20/a b');--.parquet",
            "not parquet": "date=2026-11-20/notes.txt",
            "percent-encoded dots": f"date=2026-11-20/%2E%2E/%2E%2E/{part.split('/')[1]}",
            "no partition folder": part.split("/")[1]}


@pytest.mark.parametrize("how", ["dotdot", "absolute", "file uri", "another table",
                                 "another table, absolute", "a name of unsafe characters",
                                 "not parquet", "percent-encoded dots",
                                 "no partition folder"])
@pytest.mark.hostile("a table's log adds a file by a path with `..`, an absolute path, a "
                     "file:// URI, a path into another table's folder, outside a partition "
                     "folder, or a file name of other characters than letters, digits, '.', "
                     "'-' and '_' or not ending in .parquet",
                     "refused as tampered (data file) by open, connect and status; nothing "
                     "outside the root read or touched")
def test_hostile_log_add_path(crafted: Crafted, how: str) -> None:
    rewrite_log(crafted.root, change_add(path=_paths(crafted)[how]))
    assert_refused(crafted, "data file")


@pytest.mark.hostile("a table's log adds a file of csload's shape that does not exist",
                     "refused with a StoreError naming the lake and the table, DuckDB's "
                     "first line only (no SQL), for connect and for a sync")
def test_hostile_log_add_path_to_a_missing_file(crafted: Crafted) -> None:
    part = the(read_actions(crafted.root, "views"), "add")["path"]
    rewrite_log(crafted.root, change_add(path=part.replace("-0.parquet", "-7.parquet")))
    for attempt in (lambda: read_views(crafted.lake), lambda: sync_one_run(crafted)):
        exc = refusal(attempt)
        assert exc is not None and str(crafted.root) in str(exc), exc
        assert not RAW_SQL.search(str(exc)), str(exc)
    assert_outside_untouched(crafted)


VALUES = {"not a date": ("not-a-date", "not-a-date"), "a path": ("../x", "../x"),
          "not a day": ("2026-13-45", "2026-13-45"),
          "another day than its folder": ("2026-11-21", "data file"),
          "null in a dated folder": (None, "data file")}


@pytest.mark.parametrize("how", VALUES)
@pytest.mark.hostile("a table's log gives a file a partition value that is not a date, a "
                     "path, or not the day of its folder",
                     "refused naming the value or the file")
def test_hostile_log_partition_value(crafted: Crafted, how: str) -> None:
    value, shown = VALUES[how]
    rewrite_log(crafted.root, change_add(partitionValues={"date": value}))
    assert_refused(crafted, "views", shown)


@pytest.mark.parametrize("value", ["../x", "2026-11-20' OR 1=1 --"])
@pytest.mark.hostile("a table's log types the partition column `date` as a string and gives a "
                     "file a value that is a path or SQL",
                     "refused as tampered (partition), naming the value")
def test_hostile_log_partition_value_as_a_string(crafted: Crafted, value: str) -> None:
    rewrite_log(crafted.root, change_field("date", type="string"))
    rewrite_log(crafted.root, change_add(partitionValues={"date": value}))
    assert_refused(crafted, "partition", value)


STATS = {"negative": '{"numRecords": -5}', "huge": '{"numRecords": 99999999999999999999999}',
         "invalid JSON": "{not json",
         "SQL in min/max": '{"numRecords": 2, "minValues": {"url": "a\'); DROP TABLE views; --"}}'}


@pytest.mark.parametrize("how", STATS)
@pytest.mark.hostile("a table's log gives a file negative, huge, invalid or SQL-carrying stats",
                     "unaffected: csload never reads the stats (row counts come from the "
                     "ledger)")
def test_hostile_log_stats(crafted: Crafted, how: str) -> None:
    rewrite_log(crafted.root, change_add(stats=STATS[how]))
    assert_unaffected(crafted)


# --- commits appended after the version the ledger records ------------------------------------

def append_commit(c: Crafted, operation: str, actions: Actions) -> None:
    """A crafted version 1 of `views` (the ledger records 0)."""
    info = {"commitInfo": {"timestamp": 1, "operation": operation, "operationParameters": {}}}
    write_actions(c.root, "views", 1, [info, *actions])


def assert_open_refused_and_nothing_undone(c: Crafted, *words: str) -> None:
    """Opening the store refuses the crafted commit (another writer's, not csload's: it has
    no csload txid) naming the lake and `words` (default: the commit's version and how to
    undo it), and undoes nothing; readers read the recorded version; nothing outside the root
    touched."""
    exc = refusal(lambda: open_and_close(c.lake))
    assert exc is not None, "the store opened over a crafted commit"
    message = str(exc)
    for word in (str(c.root), *(words or ("did not make", "version 1", "restore(0)"))):
        assert word in message, message
    assert not RAW_SQL.search(message), message
    logs = sorted(p.name for p in (c.root / "views" / "_delta_log").glob("*.json"))
    assert logs == [f"{v:020d}.json" for v in (0, 1)], logs   # nothing undone, nothing added
    assert read_views(c.lake) == VIEWS
    assert {t.table: t.rows for t in c.lake.status().tables} == TABLE_ROWS
    assert_outside_untouched(c)


@pytest.mark.parametrize("how", ["file outside", "binary column"])
@pytest.mark.hostile("a commit appended to a table's log after the version the ledger records "
                     "(adding a file outside the lake, or changing a column to binary)",
                     "not csload's (no csload txid): the sync is refused, saying which commit "
                     "and how to undo it; nothing undone; readers unaffected (they read the "
                     "recorded version); nothing outside touched")
def test_hostile_appended_commit_is_refused(crafted: Crafted, how: str) -> None:
    actions = read_actions(crafted.root, "views")
    if how == "file outside":
        crafted_action = {"add": {**the(actions, "add"),
                                  "path": str(crafted.outside / "precious.txt")}}
    else:
        change_field("url", type="binary")(actions)
        crafted_action = {"metaData": the(actions, "metaData")}
    append_commit(crafted, "WRITE", [crafted_action])
    assert_open_refused_and_nothing_undone(crafted)


@pytest.mark.hostile("a commit appended to a table's log that adds a file outside the lake "
                     "but calls itself `VACUUM END` (as if it were housekeeping)",
                     "recovery compares file sets, not labels, and the commit carries no "
                     "csload txid: refused as another writer's; nothing undone; readers "
                     "unaffected; nothing outside touched")
def test_hostile_appended_commit_disguised_as_housekeeping(crafted: Crafted) -> None:
    add = the(read_actions(crafted.root, "views"), "add")
    append_commit(crafted, "VACUUM END",
                  [{"add": {**add, "path": "../../outside/precious.txt"}}])
    assert_open_refused_and_nothing_undone(crafted)


@pytest.mark.hostile("another writer's commit (kept when the table keeps its shape) adds a "
                     "file whose `_run_id` is past UBIGINT's range",
                     "refused (run id) when the next sync counts the day's rows per run; the "
                     "table's log untouched; readers read the recorded version")
def test_hostile_appended_commit_with_a_run_id_out_of_range(crafted: Crafted) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = crafted.root / "views" / "date=2026-11-20"
    [theirs] = [f for f in folder.iterdir() if f.suffix == ".parquet"]
    data = pq.read_table(theirs)
    index = data.schema.get_field_index("_run_id")
    data = data.set_column(index, "_run_id", pa.array([10**20 - 1] * data.num_rows,
                                                      data.schema.field(index).type))
    pq.write_table(data, folder / "other-writer.parquet")
    added = {**the(read_actions(crafted.root, "views"), "add"),
             "path": "date=2026-11-20/other-writer.parquet",
             "size": (folder / "other-writer.parquet").stat().st_size}
    append_commit(crafted, "WRITE", [{"add": added}])

    assert_open_refused_and_nothing_undone(crafted, "run id")


# --- folders at the root that csload did not make ------------------------------------------------

@pytest.mark.hostile("folders at the lake root csload did not make: names it never gives a "
                     "table (`Views` with a Delta log, `my data`), a plain folder, a file",
                     "unaffected and left alone: not csload's, so never read or removed")
def test_hostile_root_folders_csload_does_not_own(crafted: Crafted) -> None:
    shutil.copytree(crafted.root / "pages", crafted.root / "Views")
    (crafted.root / "my data").mkdir()
    (crafted.root / "my data" / "notes.txt").write_text("mine")
    (crafted.root / "notes").mkdir()
    (crafted.root / "README").write_text("mine")
    foreign = {name: tree(crafted.root / name) for name in ("Views", "my data", "notes")}

    assert_unaffected(crafted)
    sync_one_run(crafted)

    assert {name: tree(crafted.root / name) for name in foreign} == foreign
    assert (crafted.root / "README").read_text() == "mine"


@pytest.mark.hostile("a folder at the lake root that is a symbolic link to a Delta table "
                     "outside the lake",
                     "refused by the store (the link is named); readers unaffected; the table "
                     "outside untouched")
def test_hostile_root_folder_linked_outside(crafted: Crafted) -> None:
    shutil.copytree(crafted.root / "pages", crafted.outside / "elsewhere")
    crafted.before = tree(crafted.outside)
    (crafted.root / "elsewhere").symlink_to(crafted.outside / "elsewhere")

    exc = refusal(lambda: open_and_close(crafted.lake))
    assert exc is not None and "symbolic link" in str(exc), exc
    assert read_views(crafted.lake) == VIEWS
    assert_outside_untouched(crafted)


def _of_a_later_batch(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copied log's commit made to look a crashed sync's: of a batch the ledger has not
    recorded (a copy of a recorded table's is refused as such, before its files are read)."""
    for action in actions:
        if "txn" in action:
            action["txn"]["version"] = 10**6
    return actions


def _unrecorded_table(root: Path, name: str, path: str) -> None:
    """A Delta table `name` the ledger does not know (what a crashed sync leaves, which the
    next open removes), whose log adds `path`."""
    shutil.copytree(root / "pages", root / name)
    log = root / name / "_delta_log" / f"{0:020d}.json"
    actions = _of_a_later_batch([json.loads(line) for line in log.read_text().splitlines()])
    next(a for a in actions if "add" in a)["add"]["path"] = path
    log.write_text("".join(json.dumps(a) + "\n" for a in actions))


@pytest.mark.parametrize("how", ["absolute", "dotdot", "file uri"])
@pytest.mark.hostile("a table the ledger does not know (so recovery deletes the files its log "
                     "adds), whose log adds a file outside the lake",
                     "refused as tampered (data file) before anything is deleted; the file "
                     "outside kept")
def test_hostile_root_unrecorded_table_naming_files_outside(crafted: Crafted, how: str) -> None:
    target = crafted.outside / "precious.txt"
    path = {"absolute": str(target), "dotdot": "../../outside/precious.txt",
            "file uri": target.as_uri()}[how]
    _unrecorded_table(crafted.root, "evil", path)

    exc = refusal(lambda: open_and_close(crafted.lake))
    assert exc is not None and "data file" in str(exc) and "evil" in str(exc), exc
    assert_outside_untouched(crafted)


@pytest.mark.hostile("on S3: a table the ledger does not know whose log adds an object of a "
                     "neighbouring prefix (by s3:// URI and by `..`)",
                     "refused as tampered before anything is deleted; the neighbour's "
                     "object kept")
def test_hostile_root_unrecorded_table_naming_a_neighbours_object(
        s3_server: S3Server, tmp_path: Path) -> None:
    lake = Lake.s3(s3_server, "hostile-unrecorded")
    writer = Writer(tmp_path)
    with lake.open() as store:
        store.apply([writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, DAY),
                                   [[view_row(1, "a")]])])
    fs = lake.fs()
    neighbour = LakeFS.open(lake.root + "-neighbour", lake.options, env={})
    neighbour.write_bytes("views/date=2026-11-20/data.parquet", b"someone else's data")
    log = fs.read_bytes(f"views/_delta_log/{0:020d}.json")
    assert log is not None
    for path in (f"s3://{neighbour.base}/views/date=2026-11-20/data.parquet",
                 f"../{neighbour.base.split('/', 1)[1]}/views/date=2026-11-20/data.parquet"):
        actions = _of_a_later_batch([json.loads(line) for line in log.decode().splitlines()])
        next(a for a in actions if "add" in a)["add"]["path"] = path
        fs.write_bytes(f"evil/_delta_log/{0:020d}.json",
                       "".join(json.dumps(a) + "\n" for a in actions).encode())

        exc = refusal(lambda: open_and_close(lake))
        assert exc is not None and "data file" in str(exc), exc
        assert neighbour.read_bytes("views/date=2026-11-20/data.parquet") == \
            b"someone else's data"


# --- symbolic links inside a table's folder ------------------------------------------------

@pytest.mark.hostile("a table's partition folder replaced by a symbolic link to a copy outside "
                     "the lake",
                     "connect and a sync refuse (the path leads out of the lake through a "
                     "link); the copy untouched")
def test_hostile_table_partition_linked_outside(crafted: Crafted) -> None:
    day = crafted.root / "views" / f"date={DAY.isoformat()}"
    shutil.copytree(day, crafted.outside / "copy")
    shutil.rmtree(day)
    day.symlink_to(crafted.outside / "copy", target_is_directory=True)
    crafted.before = tree(crafted.outside)

    for attempt in (lambda: read_views(crafted.lake), lambda: sync_one_run(crafted)):
        exc = refusal(attempt)
        assert exc is not None and "symbolic link" in str(exc), exc
    assert_outside_untouched(crafted)


@pytest.mark.hostile("a symbolic link inside a table's folder (`views/date=2026-11-19`) to a "
                     "folder outside the lake holding old files",
                     "refused (`symbolic link`) before any commit or vacuum: the files "
                     "outside the lake stay")
def test_hostile_table_link_to_a_folder_outside(crafted: Crafted) -> None:
    (crafted.root / "views" / "date=2026-11-19").symlink_to(crafted.outside,
                                                           target_is_directory=True)
    with contextlib.suppress(StoreError):   # a refusal is what should happen
        sync_one_run(crafted)
    assert_outside_untouched(crafted)


@pytest.mark.hostile("a table's `_delta_log` is a symbolic link to a log outside the lake",
                     "refused (`symbolic link`) by the store, connect and status alike, "
                     "before deltalake reads the log")
def test_hostile_table_log_linked_outside(crafted: Crafted) -> None:
    log = crafted.root / "views" / "_delta_log"
    shutil.copytree(log, crafted.outside / "log")
    shutil.rmtree(log)
    log.symlink_to(crafted.outside / "log", target_is_directory=True)
    crafted.before = tree(crafted.outside)
    assert_refused(crafted, "symbolic link")
