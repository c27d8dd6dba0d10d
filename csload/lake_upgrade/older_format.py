"""Reading a lake an older csload wrote (the manifest format, before its tables were Delta
tables), for csload.lake_upgrade.convert. Read-only: nothing here writes or deletes.

That format (one JSON manifest per published version, the highest current):

    _csload/manifest/<12-digit version>.json   the commit point of each version
    _csload/ledger/<txid>/_csload_<name>.parquet   the ledger snapshot the version names
    _csload/txn/<txid>.json      (S3) a batch's marker: the files it uploads / makes obsolete
    _csload/staging/<txid>/...   (local) a batch's partitions before they are swapped in
    _csload/lock, _csload/lock.json   the writer's lock (flock; an S3 lease)
    <table>/date=<key>/part-<txid>-<n>.parquet   the data files, the same names as today's

A manifest, version 1:

    {"format": "csload-lake", "format_version": 1, "version": 12, "txid": "...",
     "created_at": "...", "ledger": "_csload/ledger/<txid>",
     "tables": {"views": {"columns": [["session_id", "UBIGINT"], ...],
                          "partitions": {"2026-11-20": {"files": [["views/date=.../part-...
                                                                   .parquet", 81234]],
                                                        "rows": 5120, "runs": {"8812": 5120}}}}},
     "touched": [["views", "2026-11-20"]]}

Whoever can write the storage can write these files, so, as the older csload did, everything
is checked whole before use (issue 16): column types through a closed list (they reach SQL),
column and table names, partition keys, txids and file paths of exactly the shapes csload
gives them (csload.lake.layout), counts and run ids in range. Anything else is a StoreError
naming the file. A local lake's current file may still be in `_csload/staging/<txid>/` when
the older csload crashed between its manifest and its swap (`current_file`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from csload.api.schemas import SCALAR_TYPES
from csload.errors import StoreError
from csload.lake.fs import LakeFS
from csload.lake.layout import (
    COLUMN_NAME,
    LEGACY_GUARD,
    LEGACY_MANIFEST_DIR,
    PARTITION_COLUMN,
    STAGING_DIR,
    TXID_SHAPE,
    check_data_file,
    check_partition_key,
    check_table,
    damaged,
    shown,
)
from csload.lake.ledger import LEDGER_TABLES
from csload.load.lineage import LINEAGE_COLUMNS

FORMAT = "csload-lake"
FORMAT_VERSION = 1
MANIFEST_DIR = LEGACY_MANIFEST_DIR
LEDGER_DIR = "_csload/ledger"
TXN_DIR = "_csload/txn"
LOCK_FILE = "_csload/lock"          # local: held with flock(2) by a running sync
LEASE_OBJECT = "_csload/lock.json"  # S3: a lease with an expiry (csload.lake_upgrade.convert)
# Everything of the older format under _csload/, removed once a lake is upgraded.
OWN_FOLDERS = (LEDGER_DIR, TXN_DIR, STAGING_DIR)
LOCKS = (LOCK_FILE, LEASE_OBJECT)

_VERSION_NAME = re.compile(r"^(\d{12})\.json$")
_TXID = TXID_SHAPE.pattern.strip("^$")
_MARKER_NAME = re.compile(rf"^({_TXID})\.json$")
_LEDGER_FILE = re.compile(
    rf"^{LEDGER_DIR}/{_TXID}/({'|'.join(stem for _, stem in LEDGER_TABLES)})\.parquet$")
_MAX_ID = 2**64 - 1   # run ids are UBIGINT

# Every column type the older csload wrote: the schemas' types, the lineage columns', VARCHAR
# (custom variables, unknown fields), the narrower integers it loaded catalog fields as, and
# lists of these. Nothing outside this list is accepted: a type ends up in SQL.
NARROW_INTEGERS = frozenset({"UTINYINT", "USMALLINT", "UINTEGER", "TINYINT", "SMALLINT",
                             "INTEGER"})
SCALAR_COLUMN_TYPES = (frozenset(SCALAR_TYPES.values()) | frozenset(LINEAGE_COLUMNS.values())
                       | {"VARCHAR"} | NARROW_INTEGERS)


def column_type(value: object, where: str) -> str:
    """The csload type a column of the older format's type `value` is upgraded to: the
    narrow integers widened to BIGINT (their lists to BIGINT[]), as csload.load.columns
    widens a DuckDB table; StoreError for a type csload never wrote."""
    if isinstance(value, str):
        listed = value.endswith("[]")
        base = value[:-2] if listed else value
        if base in SCALAR_COLUMN_TYPES:
            wide = "BIGINT" if base in NARROW_INTEGERS else base
            return wide + "[]" if listed else wide
    raise damaged(where, "column type", value)


def _count(value: object, where: str, what: str, limit: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise damaged(where, what, value)
    try:
        number = int(value)
    except ValueError:
        raise damaged(where, what, value) from None
    if not 0 <= number <= limit:
        raise damaged(where, what, value)
    return number


def _key(value: object, where: str) -> str:
    if not isinstance(value, str):   # the older format spelled the NULL partition out
        raise damaged(where, "partition", value)
    return check_partition_key(value, where)


def _txid(value: object, where: str) -> str:
    if isinstance(value, str) and TXID_SHAPE.match(value):
        return value
    raise damaged(where, "transaction id", value)


@dataclass
class LegacyPartition:
    files: list[str]          # relative to the lake root
    rows: int
    runs: dict[int, int]      # run id -> rows


@dataclass
class LegacyTable:
    columns: list[tuple[str, str]]    # csload's types, narrow integers widened
    partitions: dict[str, LegacyPartition] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        return [f for _, p in sorted(self.partitions.items()) for f in p.files]


@dataclass
class LegacyManifest:
    version: int
    txid: str
    ledger: str | None        # the ledger snapshot's folder
    tables: dict[str, LegacyTable]

    @property
    def files(self) -> set[str]:
        return {f for t in self.tables.values() for f in t.files}


def _columns(raw: Any, where: str, table: str) -> list[tuple[str, str]]:
    columns: list[tuple[str, str]] = []
    for name, kind in raw:
        if not isinstance(name, str) or name in {n for n, _ in columns} or not (
                (COLUMN_NAME.match(name) and not name.startswith("_")
                 and name != PARTITION_COLUMN) or name in LINEAGE_COLUMNS):
            raise damaged(where, f"column name of table {table}", name)
        columns.append((name, column_type(kind, where)))
    types = dict(columns)
    for name, kind in LINEAGE_COLUMNS.items():
        if types.get(name) != kind:   # every row's run and date: what the upgrade relies on
            raise damaged(where, f"lineage column {name} of table {table}", types.get(name))
    return columns


def _partition(raw: Any, where: str, table: str, key: str) -> LegacyPartition:
    if not isinstance(raw, dict) or not isinstance(raw.get("runs"), dict):
        raise damaged(where, f"partition {key} of table {table}", raw)
    files = []
    for path, size in raw["files"]:
        rel = check_data_file(path, where, table)
        if not rel.startswith(f"{table}/{PARTITION_COLUMN}={key}/"):
            raise damaged(where, f"file of partition {key}", path)
        _count(size, where, "file size")
        files.append(rel)
    runs = {_count(r, where, "run id", _MAX_ID): _count(n, where, "row count")
            for r, n in raw["runs"].items()}
    rows = _count(raw["rows"], where, "row count")
    if rows != sum(runs.values()):
        raise damaged(where, f"row count of partition {key} of table {table}", rows)
    return LegacyPartition(files, rows, runs)


def parse_manifest(data: bytes, where: str) -> LegacyManifest:
    """The manifest in `data`, checked whole (see the module docstring)."""
    try:
        obj = orjson.loads(data)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise StoreError(f"{where} is not a csload lake manifest")
        format_version = _count(obj["format_version"], where, "format version")
        if format_version != FORMAT_VERSION:
            raise damaged(where, "format version", format_version)
        txid = _txid(obj["txid"], where)
        ledger = obj.get("ledger")
        if ledger is not None and ledger != f"{LEDGER_DIR}/{txid}":
            raise damaged(where, "ledger folder", ledger)
        tables: dict[str, LegacyTable] = {}
        for name, raw in obj["tables"].items():
            table = check_table(name, where)
            tables[table] = LegacyTable(
                _columns(raw["columns"], where, table),
                {_key(k, where): _partition(p, where, table, k)
                 for k, p in raw["partitions"].items()})
        for pair in obj.get("touched", []):   # unused, but checked as the rest
            check_table(pair[0], where)
            _key(pair[1], where)
        return LegacyManifest(_count(obj["version"], where, "version"), txid, ledger, tables)
    except StoreError:
        raise
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError,
            AttributeError) as exc:
        raise StoreError(f"{where} is damaged: {shown(str(exc))}") from None


def manifest_versions(lake: LakeFS) -> list[int]:
    """The versions present, oldest first (other names in the folder are ignored)."""
    out = []
    for entry in lake.list_files(MANIFEST_DIR):
        match = _VERSION_NAME.match(entry.path.rsplit("/", 1)[-1])
        if match and entry.path != LEGACY_GUARD:   # a Delta lake's guard, not a version
            out.append(int(match.group(1)))
    return sorted(out)


def read_manifest(lake: LakeFS, version: int) -> LegacyManifest | None:
    """Version `version` (None if it is not there)."""
    name = f"{MANIFEST_DIR}/{version:012d}.json"
    data = lake.read_bytes(name)
    if data is None:
        return None
    where = f"{lake.root}/{name}"
    manifest = parse_manifest(data, where)
    if manifest.version != version:
        raise damaged(where, "version", manifest.version)
    return manifest


def read_current(lake: LakeFS) -> LegacyManifest | None:
    """The lake's current version: None where there is none (no lake of the older format)."""
    versions = manifest_versions(lake)
    if not versions:
        return None
    manifest = read_manifest(lake, versions[-1])
    if manifest is None:   # listed a moment ago: a writer of the older csload is pruning
        raise StoreError(f"lake {lake.root}: its manifest {versions[-1]} vanished while it "
                         "was read; is a sync of an older csload running?")
    return manifest


def read_ledger(lake: LakeFS, manifest: LegacyManifest) -> dict[str, bytes]:
    """The version's ledger snapshot: each ledger table's Parquet bytes, by the stem
    csload.lake.ledger.import_ledger takes (`_csload_<name>`)."""
    if manifest.ledger is None:
        raise StoreError(f"lake {lake.root} is damaged: its version {manifest.version} names "
                         "no ledger; restore the lake from a backup")
    rows = {}
    for _, stem in LEDGER_TABLES:
        rel = f"{manifest.ledger}/{stem}.parquet"
        raw = lake.read_bytes(rel)
        if raw is None:
            raise StoreError(f"lake {lake.root} is damaged: its version {manifest.version} "
                             f"names the ledger file {rel}, which is missing")
        rows[stem] = raw
    return rows


def current_file(lake: LakeFS, manifest: LegacyManifest, rel: str) -> str:
    """Where a file of the current version is, relative to the root. The older csload wrote a
    local lake's manifest before it swapped the new partition folders in from
    `_csload/staging/<txid>/`: after a crash in between, the file is still there. Names are
    unique per version, so a file found in place is the right one."""
    if lake.local and not lake.exists(rel):
        staged = f"{STAGING_DIR}/{manifest.txid}/{rel}"
        if lake.exists(staged):
            return staged
    return rel


def marker_files(lake: LakeFS) -> set[str]:
    """The data and ledger files the transaction markers of S3 batches name (uploaded, or
    made obsolete): after a crash, files no manifest may name."""
    files: set[str] = set()
    for entry in lake.list_files(TXN_DIR):
        name = _MARKER_NAME.match(entry.path.rsplit("/", 1)[-1])
        data = lake.read_bytes(entry.path) if name else None
        if name is None or data is None:
            continue
        where = f"{lake.root}/{entry.path}"
        try:
            obj = orjson.loads(data)
            if _txid(obj["txid"], where) != name.group(1):
                raise damaged(where, "transaction id", obj["txid"])
            for path in [*obj["uploads"], *obj["obsolete"]]:
                files.add(path if isinstance(path, str) and _LEDGER_FILE.match(path)
                          else _marker_data_file(path, where))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise StoreError(f"{where} is damaged: {shown(str(exc))}") from None
    return files


def _marker_data_file(value: object, where: str) -> str:
    table = value.split("/", 1)[0] if isinstance(value, str) else ""
    return check_data_file(value, where, check_table(table, where))


def known_files(lake: LakeFS) -> set[str]:
    """Every data file the older format's own records name: the files of each manifest
    version still there, and the markers' (ledger snapshots are in OWN_FOLDERS)."""
    files = marker_files(lake)
    for version in manifest_versions(lake):
        manifest = read_manifest(lake, version)
        if manifest is not None:
            files |= manifest.files
    return {f for f in files if not f.startswith(LEDGER_DIR + "/")}
