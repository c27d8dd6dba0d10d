"""The lake's Delta tables, through deltalake (delta-rs): the few operations csload needs.

csload writes a table's data files itself (DuckDB's COPY, csload.lake.publish) and deltalake
only commits them: `commit_files` adds them and, in the same commit, removes every file of the
partitions they replace, so a reader of the log sees a day before or after, never half of it.
Every commit of csload carries its application transaction (Delta's `txn` action, app id
"csload", the lake's batch number) and `csload.txid` in its commit info, so a Delta-aware
writer or auditor can tell csload's commits apart.

Two writers: deltalake commits with a put-if-absent of the next log entry (a rename on a local
disk, a conditional PUT on S3), and checks what was committed in between against what this
commit read. csload commits from the snapshot it read when it opened the table (or after its
own last commit), and replacing partitions reads the whole table, so any other writer's
commit in between makes csload's fail: `LakeConflict`, and nothing of this commit is visible.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.schema import Schema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from csload.errors import LakeConflict, StoreError
from csload.lake.layout import LEDGER_TABLE_DIR, PARTITION_COLUMN, TXID_SHAPE, partition_value
from csload.redact import redact_text

if TYPE_CHECKING:
    from csload.lake.fs import LakeFS

APP_ID = "csload"
TXID_KEY = "csload.txid"


@dataclass(frozen=True)
class WrittenFile:
    """A data file csload wrote under a table's folder, not yet committed."""

    path: str        # relative to the table's folder: date=<key>/part-<txid>-<n>.parquet
    size: int
    key: str         # its partition key (csload.lake.layout.partition_key)
    rows: int


def storage_options(lake: LakeFS) -> dict[str, str] | None:
    """deltalake's storage options for the lake (None for a local one). Credentials not given
    as options come from the environment, as for pyarrow."""
    if lake.local:
        return None
    names = {"endpoint_url": "AWS_ENDPOINT_URL", "region": "AWS_REGION",
             "access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY",
             "session_token": "AWS_SESSION_TOKEN"}
    out = {names[k]: v for k, v in lake.options.items() if k in names and v}
    out.setdefault("AWS_REGION", "us-east-1")
    endpoint = lake.options.get("endpoint_url", "")
    if endpoint.lower().startswith("http://"):
        # csload.lake.fs.require_secure_endpoint allowed it (loopback, or allow_http).
        out["AWS_ALLOW_HTTP"] = "true"
    return out


def table_uri(lake: LakeFS, rel: str) -> str:
    return lake.uri(rel)


# deltalake's CommitFailedError also says that a table cannot be written at all: a writer
# feature it does not support, an append-only table. Not a lost race: the next sync would
# fail the same (csload.lake.adopt.refuse_unwritable refuses such a table when a sync opens).
_NOT_A_CONFLICT = ("Unsupported table features", "append-only")


@contextlib.contextmanager
def delta_errors(lake: LakeFS, action: str) -> Iterator[None]:
    """deltalake's errors as csload's: a conflict is LakeConflict, anything else a StoreError
    naming the lake and the action."""
    try:
        yield
    except (CommitFailedError, DeltaError) as exc:
        text = delta_reason(exc)
        if isinstance(exc, CommitFailedError) and any(w in text for w in _NOT_A_CONFLICT):
            raise StoreError(f"cannot {action} in lake {lake.root}: {text}: another writer "
                             "changed the table so that csload cannot write it (docs/lake.md, "
                             "\"Writing to the tables\")") from None
        # A table another writer created first fails the create as a plain DeltaError.
        if not isinstance(exc, CommitFailedError) and "already exists" not in str(exc):
            raise StoreError(f"cannot {action} in lake {lake.root}: {text}") from None
        # "The next sync loads it" misled a backfill: a sync never loads a backfill's job.
        raise LakeConflict(
            f"lake {lake.root}: another process committed to the lake while this sync tried "
            f"to {action}; were two syncs running at once, or another tool writing the "
            "table? Nothing of this batch was published; the same command run again loads "
            "it") from exc
    except OSError as exc:
        raise StoreError(f"cannot {action} in lake {lake.root}: {delta_reason(exc)}") from None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HTTP_STATUS = re.compile(r"\d{3}( [A-Za-z][A-Za-z ]*)?")
_S3_CODE = re.compile(r"<Code>([A-Za-z]{1,64})</Code>")


def delta_reason(exc: BaseException) -> str:
    """deltalake's error in one line: its first, with the cause its chain ends in (the HTTP
    status and S3's error code, else the last line of the chain), scrubbed of secrets. The
    first line alone said "Kernel error -> Generic S3 error" for every storage failure
    (found by QA, 2026-12-07)."""
    text = _ANSI.sub("", str(exc))
    lines = [line.strip().lstrip("↳").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("<")]
    if not lines:
        return type(exc).__name__
    causes = [line for line in lines[1:] if _HTTP_STATUS.fullmatch(line)]
    code = _S3_CODE.search(text)
    causes += [code.group(1)] if code else []
    if not causes and len(lines) > 1:
        causes = [lines[-1][:200]]
    cause = f" ({'; '.join(causes)})" if causes else ""
    return redact_text(f"{lines[0][:300]}{cause}")


def open_table(lake: LakeFS, rel: str, version: int | None = None) -> DeltaTable | None:
    """The Delta table at `rel` (its latest version, or `version`), None if it has no log."""
    lake.refuse_links(rel)
    with delta_errors(lake, f"read the log of {rel}"):
        try:
            return DeltaTable(table_uri(lake, rel), version=version,
                              storage_options=storage_options(lake))
        except TableNotFoundError:
            return None


def added_paths(lake: LakeFS, rel: str, table: DeltaTable) -> list[object]:
    """The paths the table's log adds at its version, as the log gives them (unchecked)."""
    with delta_errors(lake, f"read the log of table {rel}"):
        paths: list[object] = pa.table(table.get_add_actions(flatten=True)).column(
            "path").to_pylist()
    return paths


def _properties(txn: int, txid: str) -> CommitProperties:
    # No retry (deltalake retries a commit that lost the race for its version at the next
    # one, after a conflict check that lets two appends, or two creates, both through). A
    # retried commit lands on top of another sync's and keeps its files: two syncs of a new
    # lake both committed their rows (29 of 30 racing creates in a test of 2026-12-07), and a
    # ledger recording the retried version counted them twice. Any commit in between, even
    # another sync's vacuum, makes this one fail (LakeConflict): two syncs were running.
    return CommitProperties(app_transactions=[Transaction(APP_ID, txn)],
                            custom_metadata={TXID_KEY: txid}, max_commit_retries=0)


def _add_actions(files: Sequence[WrittenFile]) -> list[AddAction | RemoveAction]:
    now = int(time.time() * 1000)
    return [AddAction(f.path, f.size, {PARTITION_COLUMN: partition_value(f.key)}, now, True,
                      json.dumps({"numRecords": f.rows})) for f in files]


def commit_files(lake: LakeFS, rel: str, table: DeltaTable | None,
                 files: Sequence[WrittenFile], schema: pa.Schema, *,
                 replace: Mapping[str, Sequence[str]] | None, txn: int, txid: str,
                 configuration: Mapping[str, str]) -> DeltaTable:
    """One commit of `files` to the table at `rel` that removes the files of the partitions
    they replace: `replace` maps each replaced partition key to its current files (paths
    relative to the lake root); None replaces the whole table (its columns changed).
    `table`: the snapshot this sync read (None: the table is created). The table after it.

    The removes are explicit, in an append: another writer's commit that removed any of them
    in between makes this one fail (deltalake's conflict check), and one commit can replace
    the partition of rows without a date with the others (a partition filter cannot)."""
    actions = _add_actions(files)
    lake.refuse_links(rel)
    with delta_errors(lake, f"commit table {rel}"):
        if table is None:
            create_table_with_add_actions(
                table_uri(lake, rel), Schema.from_arrow(schema),
                [a for a in actions if isinstance(a, AddAction)], mode="error",
                partition_by=[PARTITION_COLUMN], configuration=dict(configuration),
                storage_options=storage_options(lake),
                commit_properties=_properties(txn, txid))
            fresh = open_table(lake, rel)
            assert fresh is not None
            return fresh
        set_properties(table, configuration, txn, txid)
        if replace is None:
            table.create_write_transaction(actions, mode="overwrite", schema=schema,
                                           partition_by=[PARTITION_COLUMN],
                                           commit_properties=_properties(txn, txid))
        else:
            now = int(time.time() * 1000)
            prefix = f"{rel}/"
            actions += [RemoveAction(path.removeprefix(prefix), True, now, None,
                                     {PARTITION_COLUMN: partition_value(key)})
                        for key, paths in sorted(replace.items()) for path in paths]
            table.create_write_transaction(actions, mode="append", schema=schema,
                                           partition_by=[PARTITION_COLUMN],
                                           commit_properties=_properties(txn, txid))
        table.update_incremental()
        return table


def set_properties(table: DeltaTable, configuration: Mapping[str, str], txn: int, txid: str
                   ) -> None:
    """Give the table these properties (the retention settings changed since it was created):
    a commit of its own, from the snapshot this sync read, before the batch's commit. A crash
    between the two leaves the table ahead of its ledger by a commit that changed no data,
    which csload.lake.snapshot.read_table takes as it is."""
    current = table.metadata().configuration
    if all(current.get(key) == value for key, value in configuration.items()):
        return
    table.alter.set_table_properties(dict(configuration),
                                     commit_properties=_properties(txn, txid))


def commit_ledger(lake: LakeFS, table: DeltaTable | None, rows: pa.Table, *, txn: int, txid: str,
                  configuration: Mapping[str, str]) -> DeltaTable:
    """Overwrite the ledger table with `rows` (csload.lake.ledger), from the snapshot `table`
    (None: the lake's first ledger): the commit that makes a batch count."""
    lake.refuse_links(LEDGER_TABLE_DIR)
    with delta_errors(lake, "commit the ledger"):
        if table is None:
            write_deltalake(table_uri(lake, LEDGER_TABLE_DIR), rows, mode="error",
                            configuration=dict(configuration),
                            storage_options=storage_options(lake),
                            commit_properties=_properties(txn, txid))
            fresh = open_table(lake, LEDGER_TABLE_DIR)
            assert fresh is not None
            return fresh
        if configuration:
            set_properties(table, configuration, txn, txid)
        write_deltalake(table, rows, mode="overwrite", commit_properties=_properties(txn, txid))
        table.update_incremental()
        return table


def data_changed(lake: LakeFS, rel: str, then: DeltaTable, table: DeltaTable) -> bool:
    """Whether the table's data files or schema differ between two of its versions (what each
    commit says it did is not trusted: its label is the writer's word)."""
    with delta_errors(lake, f"read the log of {rel}"):
        return (set(then.file_uris()) != set(table.file_uris())
                or then.schema().to_json() != table.schema().to_json()
                or then.metadata().partition_columns != table.metadata().partition_columns)


# What deltalake's vacuum commits (csload's own carry no txid): housekeeping, whoever made it.
HOUSEKEEPING = frozenset({"VACUUM START", "VACUUM END"})


@dataclass(frozen=True)
class Commit:
    """One commit of a table's log, as its commit info describes it (the writer's word)."""

    version: int
    operation: str   # as the log says it, for messages (cut and quoted by the caller)
    ours: bool       # it carries a csload txid: a sync made it

    @property
    def housekeeping(self) -> bool:
        return self.operation in HOUSEKEEPING


def commits_after(lake: LakeFS, rel: str, table: DeltaTable, version: int) -> list[Commit]:
    """The commits of `table` after `version`, oldest first. A commit without commit info
    (optional in the protocol) is nobody's: not csload's, not housekeeping."""
    newer = table.version() - version
    if newer <= 0:
        return []
    with delta_errors(lake, f"read the history of {rel}"):
        infos = table.history(newer)
    by_version: dict[int, dict[str, object]] = {}
    for info in infos:
        number = info.get("version") if isinstance(info, dict) else None
        if isinstance(number, int) and not isinstance(number, bool):
            by_version[number] = info
    commits = []
    for number in range(version + 1, table.version() + 1):
        info = by_version.get(number, {})
        operation = info.get("operation")
        txid = info.get(TXID_KEY)
        commits.append(Commit(number, operation if isinstance(operation, str) else "",
                              isinstance(txid, str) and TXID_SHAPE.match(txid) is not None))
    return commits


def restore(lake: LakeFS, table: DeltaTable, version: int, txn: int, txid: str) -> None:
    """Bring the table back to `version` (a new commit; the newer files stay until vacuumed)."""
    with delta_errors(lake, "undo what a crashed sync committed"):
        table.restore(version, commit_properties=_properties(txn, txid))


# Files no version of `table` names are deleted only once at least this old, however short
# the retention window: they may be another sync's, written and not yet committed (a lake has
# no lock; a batch's files are written before its commit), or committed after the version
# the vacuum reads. A crashed sync's wait a day at most past the window.
UNNAMED_FILE_HOURS = 24


def vacuum(lake: LakeFS, rel: str, table: DeltaTable, retention_hours: int) -> list[str]:
    """Delete the files a version removed longer than the retention window ago (a running
    reader keeps its snapshot's files for that long), and the files no version names (a
    crashed sync's) once older than the window and than UNNAMED_FILE_HOURS."""
    lake.refuse_links(rel)
    with delta_errors(lake, "remove files older than the retention window"):
        removed: list[str] = []
        if retention_hours < UNNAMED_FILE_HOURS:   # the removed files only
            removed += table.vacuum(retention_hours=retention_hours, dry_run=False,
                                    enforce_retention_duration=False, full=False)
        removed += table.vacuum(retention_hours=max(retention_hours, UNNAMED_FILE_HOURS),
                                dry_run=False, enforce_retention_duration=False, full=True)
        return removed


# A table no sync writes is vacuumed by the syncs of the day after its files are due.
VACUUM_DUE_GRACE_HOURS = 24


def vacuum_due(lake: LakeFS, table: DeltaTable, retention_hours: int) -> bool:
    """For a table this sync did not write: whether files it removed may be past the retention
    window and still there. Its newest commit is not a vacuum's and is older than the window
    (every file it or an earlier commit removed is then past it), by less than one more
    window and a day (VACUUM_DUE_GRACE_HOURS). A vacuum that removes any file ends with a
    commit of its own, so the next syncs pass the table by; one that removes nothing commits
    nothing, and the time limit keeps such a table (its last commit removed no file) from
    being listed at every sync for good, an S3 LIST each. Only the tables a sync wrote were
    vacuumed: those of a job suspended or replaced kept their replaced files for good (QA,
    2026-12-07)."""
    with delta_errors(lake, "read the newest commit"):
        newest = table.history(1)
    if not newest:
        return False
    operation, stamp = newest[0].get("operation"), newest[0].get("timestamp")
    if not isinstance(stamp, int) or str(operation).startswith("VACUUM"):
        return False
    age_hours = (time.time() - stamp / 1000) / 3600
    return retention_hours <= age_hours <= 2 * retention_hours + VACUUM_DUE_GRACE_HOURS

