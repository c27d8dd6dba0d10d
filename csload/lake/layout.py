"""Where things are in a lake, and the shapes of the names csload gives them.

    ROOT/<table>/                    a Delta table per csload table, partitioned by `date`
    ROOT/<table>/date=YYYY-MM-DD/    a day's files (`__HIVE_DEFAULT_PARTITION__`: no date)
    ROOT/<table>/_delta_log/         the table's transaction log
    ROOT/_csload/ledger_table/       the ledger, a small Delta table (csload.lake.ledger)
    ROOT/_csload/downloads/          a local lake's part downloads, a folder per running
                                     sync (csload.target, csload.scratch)

Everything read back from a lake (a table's name, a partition value, a file path in a log) is
checked against these shapes before it is used: whoever can write the storage can write the
logs (issue 16).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime

from csload.errors import StoreError

PARTITION_COLUMN = "date"   # the Hive partition folders: <table>/date=YYYY-MM-DD
# The column names a lake's tables keep for themselves, with what each is (for refusals).
RESERVED_COLUMNS = {PARTITION_COLUMN: f"the lake's partition column (its folders are "
                                      f"{PARTITION_COLUMN}=YYYY-MM-DD)"}
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
OWN_DIR = "_csload"
LEDGER_TABLE_DIR = "_csload/ledger_table"
# What an older csload kept (a hand-made manifest format): what an upgrade reads and removes.
LEGACY_MANIFEST_DIR = "_csload/manifest"
# A Delta lake's answer to such a csload, which reads the highest `<12 digits>.json` there as
# its lake's current version: one of a format version newer than it knows, which it refuses
# ("newer than this csload understands: upgrade csload"). Without it, a csload of before the
# Delta tables (2026-12-06) took a Delta lake for a new, empty one, synced into it and left its
# tables' data files deleted (found rolling a customer's csload back). Only its name is read.
LEGACY_GUARD = f"{LEGACY_MANIFEST_DIR}/999999999999.json"
LEGACY_GUARD_BYTES = (b'{"format": "csload-lake", "format_version": 2, "note": "a lake of Delta '
                      b'tables: this csload is older than the lake; upgrade csload"}\n')
STAGING_DIR = "_csload/staging"
LOG_DIR = "_delta_log"

_TXID = r"\d{8}T\d{6}-[0-9a-f]{12}"
TXID_SHAPE = re.compile(rf"^{_TXID}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# What csload writes: part-<txid>-<n>.parquet under <table>/date=<key>/.
_DATA_FILE = re.compile(
    rf"^([a-z0-9_]+)/{PARTITION_COLUMN}=([^/]+)/part-{_TXID}-\d{{1,9}}\.parquet$")
# What a table's log may name: a file in its partition's folder, with a name of the shape
# Delta writers give them (delta-rs: part-00000-<uuid>-c000.zstd.parquet, Spark: ...-c000.snappy
# .parquet): kept when another writer's commit is adopted (csload.lake.adopt).
_TABLE_FILE = re.compile(
    rf"^([a-z0-9_]+)/{PARTITION_COLUMN}=([^/]+)/[A-Za-z0-9][A-Za-z0-9._-]{{0,250}}\.parquet$")
COLUMN_NAME = re.compile(r"^[a-z0-9_]{1,255}$")
TABLE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,254}$")


def shown(value: object) -> str:
    """A value from a file, quoted and cut for a message (repr escapes control characters)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def damaged(where: str, what: str, value: object) -> StoreError:
    return StoreError(f"{where} is damaged or was tampered with: {what} {shown(value)} is not "
                      "one csload writes; restore the lake from a backup or sync into a new one")


def new_txid() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(6)}"


def check_table(value: object, where: str) -> str:
    """A table name as csload gives them (csload.load.columns.check_table_name's rule:
    lowercase letters, digits and '_', not starting with '_')."""
    if isinstance(value, str) and TABLE_NAME.match(value):
        return value
    raise damaged(where, "table name", value)


def check_partition_key(value: object, where: str) -> str:
    if value is None or value == NULL_PARTITION:
        return NULL_PARTITION
    if isinstance(value, str) and _DAY.match(value):
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise damaged(where, "partition", value)


def check_data_file(value: object, where: str, table: str) -> str:
    """A data file's path relative to the root: `<table>/date=<key>/part-<txid>-<n>.parquet`
    of that table (a log naming any other file was not written by csload)."""
    return _check_file(_DATA_FILE, value, where, table)


def written_by_csload(path: str, table: str) -> bool:
    """Whether `path` (relative to the root) has the shape of a data file csload writes into
    `table`'s folder."""
    match = _DATA_FILE.match(path)
    return match is not None and match.group(1) == table


def check_table_file(value: object, where: str, table: str) -> str:
    """A data file's path relative to the root, as a table's log may name it: a file of a safe
    name in one of the table's partition folders (`check_data_file` is csload's own shape)."""
    return _check_file(_TABLE_FILE, value, where, table)


def _check_file(shape: re.Pattern[str], value: object, where: str, table: str) -> str:
    """`value` if it has `shape`, in a partition folder of `table` (groups 1 and 2)."""
    match = shape.match(value) if isinstance(value, str) else None
    if match is None or match.group(1) != table:
        raise damaged(where, "data file", value)
    check_partition_key(match.group(2), where)
    return str(value)


def partition_key(value: date | None) -> str:
    return NULL_PARTITION if value is None else value.isoformat()


def partition_date(key: str) -> date | None:
    return None if key == NULL_PARTITION else date.fromisoformat(key)


def partition_value(key: str) -> str | None:
    """The Delta partition value of a partition key (None for rows without a date)."""
    return None if key == NULL_PARTITION else key
