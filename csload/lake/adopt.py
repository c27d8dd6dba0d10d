"""Another writer's commits to a lake's table, kept when csload can: `check_adoptable`, `adopt`,
and for readers `follow_others`.

A lake's tables are Delta tables, and other engines write them too: a `DELETE` of a visitor's
rows (a GDPR request), an `OPTIMIZE` that compacts files. Such a commit carries no csload txid
(csload.lake.delta.commits_after), so it is not a crashed sync's: undoing it, as recovery
undoes a crashed sync's commit, would throw away the user's change without asking. It is kept
when the table still has the shape csload reads and writes: the same columns and types as the
version the ledger records, partitioned by `date`, every file in its partition's folder, and no
reader feature beyond the file list (csload.lake.snapshot.read_table). The ledger then records
the table's latest version, and each partition whose files changed has its rows per run
counted again from the files' `_run_id` column (csload.lake.state: where a run's rows are when
a re-run replaces them, and what `status` counts). Readers (`csload.connect`, `status`,
`lake_files`) follow such commits at once, as Delta readers do, not from the next sync on.

A change that breaks the shape (a column added or retyped, a file outside its partition's
folder, deletion vectors) is refused with what to do, never undone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import DeltaTable

from csload.errors import StoreError
from csload.lake.delta import Commit, added_paths, commits_after
from csload.lake.layout import PARTITION_COLUMN, damaged, shown
from csload.lake.snapshot import (
    LakeSnapshot,
    LakeTable,
    read_table,
    reader_protocol_problem,
)
from csload.lake.state import TableState
from csload.notices import notice

if TYPE_CHECKING:
    from csload.lake.fs import LakeFS

log = logging.getLogger("csload.lake")
RUN_COLUMN = "_run_id"
_MAX_RUN_ID = 2**64 - 1


def described(commits: Sequence[Commit]) -> str:
    """The commits for a message: "version 3 (DELETE), version 4 (OPTIMIZE)"."""
    said = [f"version {c.version} ({shown(c.operation) if c.operation else 'no commit info'})"
            for c in commits[:3]]
    if len(commits) > 3:
        said.append(f"and {len(commits) - 3} more")
    return ", ".join(said)


def restore_how(lake: LakeFS, name: str, version: int) -> str:
    """How a user restores table `name` to `version`, for a message."""
    return (f"deltalake: DeltaTable({shown(lake.uri(name))}).restore({version}); Spark: "
            f"RESTORE TABLE ... TO VERSION AS OF {version}")


def undo_hint(lake: LakeFS, name: str, version: int) -> str:
    return (f"to go on, undo them yourself ({restore_how(lake, name, version)}) and "
            "sync again (docs/lake.md, \"Writing to the tables\")")


# The writer features another writer may turn on that deltalake still commits to (checked
# by tests/lake/test_lake_other_writers.py with the deltalake installed). Reader features are
# refused for every read (csload.lake.snapshot.refuse_reader_features).
WRITABLE_FEATURES = frozenset({"appendOnly", "changeDataFeed", "checkConstraints",
                               "generatedColumns", "invariants"})
# Where a table keeps its CHECK constraints (properties) and invariants (field metadata): the
# features are kept, a constraint or an invariant is refused (`refuse_unwritable`).
CONSTRAINT_PREFIX = "delta.constraints."
INVARIANTS_KEY = "delta.invariants"


def refuse_unwritable(lake: LakeFS, name: str, table: DeltaTable) -> None:
    """Before a sync writes anything: StoreError if another writer made table `name` one that
    csload cannot commit to: a writer feature deltalake does not write (Databricks' row
    tracking, liquid clustering's domain metadata, UniForm, identity columns), or
    `delta.appendOnly` (a re-run's replacement of a day removes files). Before 2026-12-07 the
    commit failed after the batch's work, as a "conflict" with another process. Also a CHECK
    constraint or a column invariant: csload commits the files it wrote itself, which no
    Delta writer checks, so the rows of a run would break it silently (found 2026-12-07)."""
    features = set(table.protocol().writer_features or ()) - WRITABLE_FEATURES
    configuration = table.metadata().configuration
    append_only = configuration.get("delta.appendOnly") == "true"
    constraints = sorted(key.removeprefix(CONSTRAINT_PREFIX) for key in configuration
                         if key.startswith(CONSTRAINT_PREFIX))
    invariants = _has_invariants(table.schema().to_json())
    uri = lake.uri(name)
    if features:
        what = (f"Delta writer features that deltalake, csload's Delta writer, does not write "
                f"({shown(sorted(features))})")
        fix = (f"drop them if your engine can (Spark: ALTER TABLE delta.`{uri}` DROP FEATURE "
               "<name>)")
    elif append_only:
        what = "delta.appendOnly = true"
        fix = (f"set it back (ALTER TABLE delta.`{uri}` SET TBLPROPERTIES "
               "('delta.appendOnly' = 'false'))")
    elif constraints:
        what = (f"CHECK constraints ({', '.join(map(shown, constraints))}), which csload does "
                "not check the rows of a run against")
        fix = (f"drop them (deltalake: DeltaTable({shown(uri)}).alter.drop_constraint(NAME); "
               f"Spark: ALTER TABLE delta.`{uri}` DROP CONSTRAINT NAME) and check the rows "
               "with a query of yours")
    elif invariants:
        what = "column invariants (delta.invariants), which csload does not check rows against"
        fix = "remove them from the table's schema"
    else:
        return
    raise StoreError(
        f"table {name} of lake {lake.root} has {what}: another writer changed it, and csload "
        f"cannot commit to it (a sync stops before it writes anything). To go on, {fix}, or "
        "sync into a new lake (docs/lake.md, \"Writing to the tables\")")


def _has_invariants(schema_json: str) -> bool:
    """Whether a Delta schema (its JSON) gives any field, nested ones too, an invariant."""
    def walk(node: object) -> bool:
        if isinstance(node, dict):
            metadata = node.get("metadata")
            if isinstance(metadata, dict) and INVARIANTS_KEY in metadata:
                return True
            return any(walk(value) for value in node.values())
        if isinstance(node, list):
            return any(walk(value) for value in node)
        return False

    try:
        return walk(json.loads(schema_json))
    except ValueError:
        return False


def stopped_then_others(lake: LakeFS, name: str, commits: Sequence[Commit], version: int
                        ) -> StoreError | None:
    """The refusal of a table whose log has, after the recorded `version`, a stopped sync's
    commit and another writer's (undoing the first would lose the second); None if not."""
    ours = [c for c in commits if c.ours]
    others = [c for c in commits if not c.ours and not c.housekeeping]
    if not ours or not others:
        return None
    return StoreError(
        f"table {name} of lake {lake.root} has the commit of a sync that stopped before "
        f"recording it ({described(ours)}) and, after it, commits csload did not make "
        f"({described(others)}): csload cannot undo the first and keep the others. Restore "
        f"the table to version {version} ({restore_how(lake, name, version)}), sync, then "
        "make your change again (docs/lake.md, \"Writing to the tables\")")


def check_adoptable(lake: LakeFS, recorded: LakeTable, table: DeltaTable,
                    commits: Sequence[Commit]) -> LakeTable:
    """The table at its latest version, checked to have the shape of the recorded one;
    StoreError saying which commits changed what, and how to undo them, if it has not."""
    where = f"table {recorded.name} of lake {lake.root}"
    protocol = reader_protocol_problem(table)
    if protocol is not None:
        # A restore keeps a table's protocol: the undo hint of the other refusals would not
        # help (found 2026-12-07).
        raise StoreError(
            f"{where} has commits csload did not make ({described(commits)}) that csload "
            f"cannot keep: {protocol}. Restoring an older version does not lower a table's "
            "protocol: drop the feature with the engine that turned it on (Spark, Databricks: "
            f"ALTER TABLE delta.`{lake.uri(recorded.name)}` DROP FEATURE <name>), or sync into "
            "a new lake")
    _refuse_files_outside_folders(lake, recorded.name, table, commits, recorded.delta.version())
    try:
        if table.metadata().partition_columns != [PARTITION_COLUMN]:
            raise StoreError(f"it is partitioned by {shown(table.metadata().partition_columns)}, "
                             f"not [{PARTITION_COLUMN!r}]")
        latest = read_table(lake, recorded.name, table.version(), recorded.state, latest=table)
        if latest.columns != recorded.columns:
            before, after = dict(recorded.columns), dict(latest.columns)
            changed = sorted(n for n in before.keys() | after.keys()
                             if before.get(n) != after.get(n))
            raise StoreError(f"they changed its columns ({', '.join(changed[:5])})")
    except StoreError as error:
        raise StoreError(
            f"{where} has commits csload did not make ({described(commits)}) that csload "
            f"cannot keep: {error}. csload keeps other writers' changes to rows and files, "
            f"not to a table's shape; {undo_hint(lake, recorded.name, recorded.delta.version())}"
        ) from None
    return latest


def _refuse_files_outside_folders(lake: LakeFS, name: str, table: DeltaTable,
                                  commits: Sequence[Commit], recorded: int) -> None:
    """StoreError if the table's log adds a file outside its partition folders, where
    csload does not read: Polars' write_delta does, and the sync said the lake was "damaged
    or tampered with; restore it from a backup", then to restore the version (QA,
    2026-12-08). A file of another shape in its folder is refused later, as damaged."""
    outside = next((p for p in added_paths(lake, name, table)
                    if not str(p).startswith(f"{PARTITION_COLUMN}=")), None)
    if outside is not None:
        raise StoreError(
            f"table {name} of lake {lake.root} has commits csload did not make "
            f"({described(commits)}) that add a file outside its {PARTITION_COLUMN}= folders "
            f"({shown(outside)}), where csload does not read (Polars' write_delta puts its "
            f"files so); {undo_hint(lake, name, recorded)}. To write rows to "
            "csload's tables, use deltalake.write_deltalake(..., partition_by=["
            f"{PARTITION_COLUMN!r}])")


def adopt(lake: LakeFS, recorded: LakeTable, latest: LakeTable,
          commits: Sequence[Commit]) -> TableState:
    """What the ledger records of the table once another writer's commits are kept: the latest
    version, and the rows per run of each partition whose files changed, counted again."""
    notice(log, "lake %s: kept the commits of table %s that csload did not make (%s); the "
           "ledger now records its version %s", lake.root, recorded.name, described(commits),
           latest.delta.version())
    return _recounted(lake, recorded, latest)


def _recounted(lake: LakeFS, recorded: LakeTable, latest: LakeTable) -> TableState:
    where = f"table {recorded.name} of lake {lake.root}"
    changed = {key for key in recorded.files.keys() | latest.files.keys()
               if recorded.files.get(key) != latest.files.get(key)}
    partitions = {key: runs for key, runs in recorded.state.partitions.items()
                  if key not in changed}
    for key in sorted(changed):
        files = latest.files.get(key)
        counts = _run_rows(lake, recorded.name, files, where) if files else {}
        if counts:
            partitions[key] = counts
    return TableState(latest.delta.version(), partitions)


def unrecorded_commits(lake: LakeFS, recorded: LakeTable, latest: DeltaTable
                       ) -> tuple[list[Commit], LakeTable | None]:
    """The commits of a table after the version the ledger records, and the table at `latest`
    checked for keeping (None: a stopped sync's commits, which recovery undoes); StoreError
    for what the next sync refuses: a stopped sync's commit with another writer's after it,
    or another writer's change csload cannot keep. What recovery plans, and what readers
    follow (`follow_others`)."""
    version = recorded.delta.version()
    commits = commits_after(lake, recorded.name, latest, version)
    if any(c.ours for c in commits):
        mixed = stopped_then_others(lake, recorded.name, commits, version)
        if mixed is not None:
            raise mixed
        return commits, None
    # no sync of csload made them: another writer's, kept if csload can
    return commits, check_adoptable(lake, recorded, latest, commits)


def follow_others(lake: LakeFS, snapshot: LakeSnapshot) -> None:
    """For readers (csload.lake.reader): each table that only other writers changed after the
    version the ledger records, in a way the next sync keeps, is read at its latest version,
    as a Delta reader sees it: a visitor's rows the user deleted are not shown again until the
    next sync records the delete. Its rows per run are counted as that sync will count them
    (`status`; the `_run_id` column of the days whose files changed), which also checks them.

    A table with a stopped sync's commit stays at the recorded version (the next sync undoes
    that commit; readers see whole batches only), and so does one whose commits the next sync
    will refuse, with a warning saying so."""
    for name, table in sorted(snapshot.tables.items()):
        if table.ahead is None:
            continue
        try:
            _commits, latest = unrecorded_commits(lake, table, table.ahead)
            if latest is None:   # a stopped sync's: readers see whole batches only
                continue
            latest.state = _recounted(lake, table, latest)
        except StoreError as error:
            log.warning("%s. Until then csload reads the table at version %s, the one its "
                        "ledger records", error, table.delta.version())
            continue
        snapshot.tables[name] = latest
        snapshot.state.tables[name] = latest.state


def _run_rows(lake: LakeFS, table: str, files: Sequence[str], where: str) -> dict[int, int]:
    """Rows per run id in `files` (relative to the lake root); rows without one count for
    no run (csload writes none, another writer may)."""
    try:
        with lake.errors(f"read the files of table {table}"):
            data = pads.dataset([lake.full(f) for f in files], filesystem=lake.fs,
                                format="parquet").to_table(columns=[RUN_COLUMN])
    except pa.ArrowException as exc:   # not Parquet, or no run id column
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise StoreError(f"{where}: cannot read {RUN_COLUMN} from the files another writer "
                         f"committed ({first})") from None
    counts = data.group_by(RUN_COLUMN).aggregate([(RUN_COLUMN, "count")])
    rows: dict[int, int] = {}
    for run_id, count in zip(counts.column(RUN_COLUMN).to_pylist(),
                             counts.column(f"{RUN_COLUMN}_count").to_pylist(), strict=True):
        if run_id is None:
            continue
        try:   # the files' own type: decimal(20,0) from csload, anything from a crafted file
            number = int(run_id)
        except (TypeError, ValueError, ArithmeticError):
            raise damaged(where, "run id", run_id) from None
        if isinstance(run_id, (str, bytes, bool)) or number != run_id \
                or not 0 <= number <= _MAX_RUN_ID:
            raise damaged(where, "run id", run_id)
        rows[number] = int(count)
    return rows
