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
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from csload.errors import StoreError
from csload.lake.fs import LakeFS

FORMAT = "csload-lake"
FORMAT_VERSION = 1
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
MANIFEST_DIR = "_csload/manifest"
LEDGER_DIR = "_csload/ledger"
TXN_DIR = "_csload/txn"
STAGING_DIR = "_csload/staging"
KEEP_MANIFESTS = 3

_VERSION_NAME = re.compile(r"^(\d{12})\.json$")


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
    def from_json(cls, data: dict[str, Any]) -> Partition:
        return cls([(str(p), int(n)) for p, n in data["files"]], int(data["rows"]),
                   {int(r): int(n) for r, n in data["runs"].items()})


@dataclass
class TableEntry:
    columns: list[tuple[str, str]]
    partitions: dict[str, Partition] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"columns": [[n, t] for n, t in self.columns],
                "partitions": {k: p.to_json() for k, p in sorted(self.partitions.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableEntry:
        return cls([(str(n), str(t)) for n, t in data["columns"]],
                   {k: Partition.from_json(p) for k, p in data["partitions"].items()})

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
        try:
            obj = orjson.loads(data)
            if obj.get("format") != FORMAT:
                raise StoreError(f"{where} is not a csload lake manifest")
            if int(obj["format_version"]) > FORMAT_VERSION:
                raise StoreError(
                    f"{where} has lake format version {obj['format_version']}, newer than "
                    f"this csload understands ({FORMAT_VERSION}): upgrade csload")
            return cls(version=int(obj["version"]), txid=str(obj["txid"]),
                       created_at=str(obj["created_at"]), ledger=obj.get("ledger"),
                       tables={n: TableEntry.from_json(t) for n, t in obj["tables"].items()},
                       touched=[(str(t), str(k)) for t, k in obj.get("touched", [])])
        except StoreError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{where} is damaged: {exc}") from None

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
            return Manifest.from_bytes(data, f"{lake.root}/{name}")
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
        try:
            obj = orjson.loads(data)
            return cls(str(obj["txid"]), int(obj["version"]), [str(p) for p in obj["uploads"]],
                       [str(p) for p in obj["obsolete"]])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{where} is damaged: {exc}") from None


def marker_name(txid: str) -> str:
    return f"{TXN_DIR}/{txid}.json"
