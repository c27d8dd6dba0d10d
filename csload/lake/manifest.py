"""The manifest: which files make up the lake's current version, and which ledger goes with them.

A version is one JSON object, `_csload/manifest/<version>.json` (12 digits, zero-padded, so
that names sort like numbers). Writing it is the commit point of a sync batch: a version
object appears whole or not at all (a local rename, or one S3 PUT), and the highest version
is the current one. Readers and csload follow it; nothing else is needed to know what the
lake holds. The format (version 1):

    {
      "format": "csload-lake", "format_version": 1,
      "version": 12, "txid": "20261125T120000-3f9a1c2b07de", "created_at": "2026-...Z",
      "ledger": "_csload/ledger/20261125T120000-3f9a1c2b07de",
      "tables": {
        "views": {
          "columns": [["session_id", "UBIGINT"], ..., ["_loaded_at", "TIMESTAMP"]],
          "partitions": {
            "2026-11-20": {"files": [["views/date=2026-11-20/part-<txid>-0.parquet", 81234]],
                           "rows": 5120, "runs": {"8812": 5120}}
          }
        }
      },
      "touched": [["views", "2026-11-20"]]
    }

* `columns`: the table's columns and DuckDB types, in order. Every file of a table has exactly
  these columns (a new column rewrites the table's files once), so any reader can read the
  table without schema merging.
* `partitions`: one entry per date folder (`__HIVE_DEFAULT_PARTITION__` for rows without a
  date), with its files (path relative to the root, bytes), its rows, and its rows per run:
  how csload knows where a run's rows are when a re-run replaces them.
* `touched`: the partitions this version changed: the partitions a crashed local sync must
  finish swapping in (csload.lake.store).
* `ledger`: the folder holding the ledger snapshot of this version (csload.lake.ledger).

The transaction marker `_csload/txn/<txid>.json` (`TxnMarker`) is written before a batch's
files are: it names the files the batch will add and those it will make obsolete, so that the
next sync can remove either set after a crash, depending on whether the version was published.

Whoever can write the lake's storage can write these files, so both are checked whole before
anything uses them (issue 16): a column type must be one csload writes (a closed list, never
SQL text: types end up in `CREATE TABLE` and `CAST`), table names, partition keys, txids and
file paths must have exactly the shapes csload gives them (so no path leaves the lake root),
and counts and run ids must be in range. Anything else is a StoreError naming the file.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from csload.api.schemas import SCALAR_TYPES
from csload.errors import ConfigError, StoreError
from csload.lake.fs import LakeFS
from csload.load.columns import LINEAGE_COLUMNS, check_table_name
from csload.load.ledger import LEDGER_NAMES

FORMAT = "csload-lake"
FORMAT_VERSION = 1
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
MANIFEST_DIR = "_csload/manifest"
LEDGER_DIR = "_csload/ledger"
TXN_DIR = "_csload/txn"
STAGING_DIR = "_csload/staging"
KEEP_MANIFESTS = 3
PARTITION_COLUMN = "date"   # the Hive partition folders: <table>/date=YYYY-MM-DD

_VERSION_NAME = re.compile(r"^(\d{12})\.json$")
_TXID = r"\d{8}T\d{6}-[0-9a-f]{12}"
TXID_SHAPE = re.compile(rf"^{_TXID}$")
MARKER_NAME = re.compile(rf"^({_TXID})\.json$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATA_FILE = re.compile(rf"^([^/]+)/{PARTITION_COLUMN}=([^/]+)/part-{_TXID}-\d{{1,9}}\.parquet$")
_LEDGER_FILE = re.compile(
    rf"^{LEDGER_DIR}/{_TXID}/_csload_({'|'.join(LEDGER_NAMES)})\.parquet$")
_COLUMN_NAME = re.compile(r"^[a-z0-9_]{1,255}$")
_MAX_ID = 2**64 - 1   # run ids are UBIGINT

# Every column type csload writes: the schemas' types, the lineage columns' and VARCHAR (custom
# variables, unknown fields), the integer widths an older csload used (csload.load.columns
# widens them), and lists of any of these. A manifest naming anything else was not written by
# csload: its types are pasted into SQL, so nothing outside this list is ever accepted.
_OLDER_INTEGERS = frozenset({"UTINYINT", "USMALLINT", "UINTEGER", "TINYINT", "SMALLINT",
                             "INTEGER"})
SCALAR_COLUMN_TYPES = (frozenset(SCALAR_TYPES.values()) | frozenset(LINEAGE_COLUMNS.values())
                       | {"VARCHAR"} | _OLDER_INTEGERS)


def _shown(value: object) -> str:
    """A value from a file, quoted and cut for a message (repr escapes control characters)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def column_type(value: object, where: str) -> str:
    """`value` if it is a column type csload writes, else StoreError: the only way a type read
    from a lake file reaches SQL."""
    if isinstance(value, str):
        base = value[:-2] if value.endswith("[]") else value
        if base in SCALAR_COLUMN_TYPES:
            return value
    raise StoreError(f"{where} is damaged or was tampered with: column type {_shown(value)} is "
                     "not one csload writes; restore the lake from a backup or sync into a new "
                     "one")


def _bad(where: str, what: str, value: object) -> StoreError:
    return StoreError(f"{where} is damaged or was tampered with: {what} {_shown(value)} is not "
                      "one csload writes; restore the lake from a backup or sync into a new one")


def check_txid(value: object, where: str) -> str:
    if isinstance(value, str) and TXID_SHAPE.match(value):
        return value
    raise _bad(where, "transaction id", value)


def check_table(value: object, where: str) -> str:
    try:
        if isinstance(value, str):
            return check_table_name(value)
    except ConfigError:
        pass
    raise _bad(where, "table name", value)


def check_partition_key(value: object, where: str) -> str:
    if value == NULL_PARTITION:
        return NULL_PARTITION
    if isinstance(value, str) and _DAY.match(value):
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise _bad(where, "partition", value)


def _count(value: object, where: str, what: str, limit: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _bad(where, what, value)
    try:
        number = int(value)
    except ValueError:
        raise _bad(where, what, value) from None
    if not 0 <= number <= limit:
        raise _bad(where, what, value)
    return number


def check_data_file(value: object, where: str, table: str | None = None,
                    key: str | None = None) -> str:
    """A data file's path, relative to the root: `<table>/date=<key>/part-<txid>-<n>.parquet`
    (of that table and partition when they are given)."""
    match = _DATA_FILE.match(value) if isinstance(value, str) else None
    if match is None or (table is not None and match.group(1) != table) \
            or (key is not None and match.group(2) != key):
        raise _bad(where, "file", value)
    check_table(match.group(1), where)
    check_partition_key(match.group(2), where)
    return str(value)


def new_txid() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(6)}"


def partition_key(value: date | None) -> str:
    return NULL_PARTITION if value is None else value.isoformat()


def partition_date(key: str) -> date | None:
    return None if key == NULL_PARTITION else date.fromisoformat(key)


def partition_dir(table: str, key: str) -> str:
    return f"{table}/date={key}"


@dataclass
class Partition:
    files: list[tuple[str, int]]
    rows: int
    runs: dict[int, int]

    def to_json(self) -> dict[str, Any]:
        return {"files": [[p, n] for p, n in self.files], "rows": self.rows,
                "runs": {str(r): n for r, n in sorted(self.runs.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str, table: str, key: str) -> Partition:
        return cls([(check_data_file(p, where, table, key), _count(n, where, "file size"))
                    for p, n in data["files"]], _count(data["rows"], where, "row count"),
                   {_count(r, where, "run id", _MAX_ID): _count(n, where, "row count")
                    for r, n in data["runs"].items()})


@dataclass
class TableEntry:
    columns: list[tuple[str, str]]
    partitions: dict[str, Partition] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"columns": [[n, t] for n, t in self.columns],
                "partitions": {k: p.to_json() for k, p in sorted(self.partitions.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str, table: str) -> TableEntry:
        columns: list[tuple[str, str]] = []
        for name, kind in data["columns"]:
            if not isinstance(name, str) or not _COLUMN_NAME.match(name) \
                    or name == PARTITION_COLUMN or name in {n for n, _ in columns}:
                raise _bad(where, f"column name of table {table}", name)
            columns.append((name, column_type(kind, where)))
        return cls(columns, {check_partition_key(k, where): Partition.from_json(p, where, table, k)
                             for k, p in data["partitions"].items()})

    def files(self, keys: set[str] | None = None) -> list[str]:
        return [f for k, p in sorted(self.partitions.items()) if keys is None or k in keys
                for f, _ in p.files]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions.values())

    def run_partitions(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for key, part in self.partitions.items():
            for run_id in part.runs:
                out.setdefault(run_id, set()).add(key)
        return out


@dataclass
class Manifest:
    version: int
    txid: str
    created_at: str
    ledger: str | None
    tables: dict[str, TableEntry] = field(default_factory=dict)
    touched: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def empty(cls) -> Manifest:
        return cls(version=0, txid="", created_at="", ledger=None)

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
            "txid": self.txid, "created_at": self.created_at, "ledger": self.ledger,
            "tables": {n: t.to_json() for n, t in sorted(self.tables.items())},
            "touched": [[t, k] for t, k in self.touched],
        }, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        """The manifest in `data`, checked whole (see the module docstring)."""
        try:
            obj = orjson.loads(data)
            if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                raise StoreError(f"{where} is not a csload lake manifest")
            format_version = _count(obj["format_version"], where, "format version")
            if format_version > FORMAT_VERSION:
                raise StoreError(
                    f"{where} has lake format version {format_version}, newer than "
                    f"this csload understands ({FORMAT_VERSION}): upgrade csload")
            txid = check_txid(obj["txid"], where)
            ledger = obj.get("ledger")
            if ledger is not None and ledger != f"{LEDGER_DIR}/{txid}":
                raise _bad(where, "ledger folder", ledger)
            tables = {check_table(n, where): TableEntry.from_json(t, where, n)
                      for n, t in obj["tables"].items()}
            return cls(version=_count(obj["version"], where, "version"), txid=txid,
                       created_at=str(obj["created_at"])[:64], ledger=ledger, tables=tables,
                       touched=[(check_table(t, where), check_partition_key(k, where))
                                for t, k in obj.get("touched", [])])
        except StoreError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"{where} is damaged: {_shown(str(exc))}") from None

    def referenced(self) -> set[str]:
        return {f for t in self.tables.values() for p in t.partitions.values() for f, _ in p.files}


def manifest_name(version: int) -> str:
    return f"{MANIFEST_DIR}/{version:012d}.json"


def manifest_versions(lake: LakeFS) -> list[int]:
    """Versions present, oldest first."""
    out = []
    for entry in lake.list_files(MANIFEST_DIR):
        match = _VERSION_NAME.match(entry.path.rsplit("/", 1)[-1])
        if match:
            out.append(int(match.group(1)))
    return sorted(out)


def read_current(lake: LakeFS) -> Manifest:
    """The lake's current version (an empty manifest for a new lake).

    A writer prunes old versions after publishing a new one, so a version listed a moment ago
    may be gone: read the newest again then.
    """
    for _ in range(5):
        versions = manifest_versions(lake)
        if not versions:
            return Manifest.empty()
        name = manifest_name(versions[-1])
        data = lake.read_bytes(name)
        if data is not None:
            manifest = Manifest.from_bytes(data, f"{lake.root}/{name}")
            if manifest.version != versions[-1]:
                raise _bad(f"{lake.root}/{name}", "version", manifest.version)
            return manifest
    raise StoreError(f"lake {lake.root}: its manifest keeps changing; is a sync pruning it?")


@dataclass
class TxnMarker:
    """What a batch is about to do, written before its first file."""

    txid: str
    version: int
    uploads: list[str]       # files the batch adds (S3: at their final place)
    obsolete: list[str]      # files that its version makes obsolete (deleted once published)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"txid": self.txid, "version": self.version,
                             "uploads": self.uploads, "obsolete": self.obsolete})

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> TxnMarker:
        """The marker in `data`: its files must be data or ledger files of the lake (the next
        sync deletes them)."""
        try:
            obj = orjson.loads(data)
            return cls(check_txid(obj["txid"], where), _count(obj["version"], where, "version"),
                       [_marker_file(p, where) for p in obj["uploads"]],
                       [_marker_file(p, where) for p in obj["obsolete"]])
        except StoreError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"{where} is damaged: {_shown(str(exc))}") from None


def _marker_file(value: object, where: str) -> str:
    if isinstance(value, str) and _LEDGER_FILE.match(value):
        return value
    return check_data_file(value, where)


def marker_name(txid: str) -> str:
    return f"{TXN_DIR}/{txid}.json"
