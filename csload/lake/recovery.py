"""Making a lake's tables agree with its ledger again after a crash: `recover`.

A batch commits each table it changed, then the ledger (csload.lake.store). A sync killed
between the two leaves a table whose log is ahead of the version the ledger records
(csload.lake.state). When a store opens, for each table of the lake:

* the log is at the recorded version, or ahead only by housekeeping (vacuum): nothing to do;
* a commit of csload's (it carries a csload txid) after the recorded version added or removed
  data: the table is restored to the recorded version (a new commit: readers of the log see
  the batch's rows go again; the rows come back when the next sync loads those runs, which
  the ledger does not list);
* commits another writer made (a DELETE, an OPTIMIZE: no csload txid): kept, and the ledger
  records the table's new version, when the table keeps the shape csload reads and writes
  (csload.lake.adopt); else the sync is refused with what to do, and nothing is undone. Both
  a crashed sync's commit and another writer's after it: refused the same way (undoing the
  first would lose the second);
* a table folder with a log that the ledger does not name (the crashed batch created it):
  its log and the files the log added are removed; a table another tool made (a commit
  without csload's txid) is refused instead, before anything is written.

Before it changes anything, recovery commits the ledger again as it is (the lake's first,
empty, if it has none): recovery cannot tell a crashed sync's commit from a running one's, and a
sync still running from the older snapshot then fails at its ledger commit (LakeConflict), as a
second writer does, instead of recording a table that is gone (`recover`). If a table was
restored, the ledger is committed once more with the tables' new versions. Files written but
never committed are removed by the vacuum of a later sync, once past the retention window.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from csload.errors import ConfigError, LakeConflict, StoreError
from csload.lake.adopt import adopt, described, refuse_unwritable, unrecorded_commits
from csload.lake.delta import (
    APP_ID,
    Commit,
    added_paths,
    commit_ledger,
    commits_after,
    delta_errors,
    open_table,
    restore,
)
from csload.lake.layout import (
    LEGACY_MANIFEST_DIR,
    LOG_DIR,
    OWN_DIR,
    check_data_file,
    new_txid,
    shown,
    written_by_csload,
)
from csload.lake.ledger import STATE_ROW, export_ledger, import_ledger, rows_table
from csload.lake.snapshot import LakeSnapshot, LakeTable, has_older_format, read_snapshot
from csload.load.columns import check_table_name
from csload.load.ledger import Ledger
from csload.notices import notice

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from csload.lake.fs import LakeFS
    from csload.lake.state import LakeState

log = logging.getLogger("csload.lake")


def table_folders(lake: LakeFS) -> list[str]:
    """The folders at the lake's root that hold a Delta log and could be csload tables."""
    names = []
    for name in lake.list_dirs(""):
        if name == OWN_DIR:
            continue
        try:
            check_table_name(name)
        except ConfigError:   # not a name csload gives a table: not csload's folder
            continue
        if lake.exists(f"{name}/{LOG_DIR}"):
            names.append(name)
    return names


def logged_files(lake: LakeFS, name: str) -> list[str]:
    """The files the latest version of table `name`'s log adds (relative to the lake's root),
    each of csload's shape."""
    table = open_table(lake, name)
    if table is None:
        return []
    where = f"table {name} of lake {lake.root}"
    return [check_data_file(f"{name}/{p}", where, name) for p in added_paths(lake, name, table)]


def _remove_unrecorded(lake: LakeFS, name: str) -> None:
    """Remove a table the ledger does not name: the files its log added, then the log."""
    lake.delete_files(logged_files(lake, name))
    lake.delete_dir(f"{name}/{LOG_DIR}")
    log.warning("lake %s: removed table %s, which a crashed sync created and never "
                "recorded", lake.root, name)


# How many times an open looks again when another sync commits the ledger while it recovers.
_ATTEMPTS = 3


def recover(lake: LakeFS) -> LakeSnapshot:
    """Undo what a crashed sync committed without its ledger; the lake's snapshot after it.

    Recovery cannot tell a crashed sync's commit from a running one's (another sync of the
    lake, between a table's commit and the ledger's). So before it changes anything it
    commits the ledger again, unchanged, from the snapshot it read (`_claim`): a sync still
    running from an older snapshot then fails at its ledger commit (LakeConflict) instead of
    recording tables this recovery undoes; and if another sync committed the ledger since the
    snapshot was read, the claim fails and the lake is read again. Undoing from a snapshot
    that is no longer the ledger's would remove a table a sync has just recorded."""
    for _ in range(_ATTEMPTS):
        snapshot = read_snapshot(lake)
        if not snapshot.exists and has_older_format(lake):
            # Opened without csload.lake_upgrade.convert.open_store (a sync's open upgrades it
            # first): a Delta ledger committed now would orphan the older data, which the
            # upgrade's finish would then delete.
            raise StoreError(
                f"lake {lake.root} was written by an older csload (its manifest, "
                f"{LEGACY_MANIFEST_DIR}/): a sync upgrades it to Delta tables, or run "
                f"`csload lake upgrade {shlex.quote(lake.root)}`")
        if not _plan(lake, snapshot):   # also refuses what it cannot undo nor keep
            return snapshot
        try:
            _claim(lake, snapshot, new_txid())
        except LakeConflict:
            continue   # another sync committed the ledger meanwhile: read the lake again
        return _undo(lake, read_snapshot(lake))
    raise LakeConflict(f"lake {lake.root}: other syncs kept committing to the lake while this "
                       "sync opened it; were several syncs running at once? Nothing was "
                       "changed; run the sync again")


def _unrecorded(lake: LakeFS, snapshot: LakeSnapshot) -> list[tuple[str, DeltaTable | None]]:
    """The tables with commits the ledger does not record: (name, None) for a table folder
    it does not name, (name, its latest version) for a table whose data changed after the
    recorded version."""
    found: list[tuple[str, DeltaTable | None]] = []
    for name in table_folders(lake):
        if name not in snapshot.state.tables:
            found.append((name, None))
            continue
        # read_snapshot opened the latest version and kept it as `ahead` when its data
        # differ from the recorded version's (csload.lake.snapshot.read_table): not opened
        # again here.
        ahead = snapshot.tables[name].ahead
        if ahead is not None:
            found.append((name, ahead))
    return found


@dataclass(frozen=True)
class _Step:
    """What recovery does to one table: remove it (`table` None: a crashed sync created it),
    restore it to the recorded version (a crashed sync's commit), or keep another writer's
    commits (`kept`: the table at its latest version, checked)."""

    name: str
    table: DeltaTable | None
    commits: tuple[Commit, ...] = ()
    kept: LakeTable | None = None
    dropped: bool = False   # the user deleted the table's folder: its runs are loaded again


def _plan(lake: LakeFS, snapshot: LakeSnapshot) -> list[_Step]:
    """What recovery would do, changing nothing; StoreError for a table whose log has both a
    crashed sync's commit and another writer's after the recorded version (restoring would
    lose the other writer's change), or another writer's change csload cannot keep."""
    for name, recorded in sorted(snapshot.tables.items()):
        refuse_unwritable(lake, name, recorded.ahead or recorded.delta)
    steps = [_Step(name, None, dropped=True) for name in snapshot.dropped]
    for name, table in _unrecorded(lake, snapshot):
        if table is None:
            _refuse_others_table(lake, name, snapshot.state.batch)
            steps.append(_Step(name, None))
            continue
        commits, kept = unrecorded_commits(lake, snapshot.tables[name], table)
        steps.append(_Step(name, table, tuple(commits), kept))
    return steps


def preview(lake: LakeFS) -> list[str]:
    """What the next sync's open would do to the lake's tables, changing nothing (`csload
    doctor`): a line per table; StoreError for what it would refuse."""
    lines = []
    for step in _plan(lake, read_snapshot(lake)):
        if step.dropped:
            lines.append(f"table {step.name}: its folder is gone; the runs loaded into it "
                         "will be loaded again")
        elif step.table is None:
            lines.append(f"folder {step.name}: a table that a sync created and never recorded "
                         "(it stopped first) will be removed")
        elif step.kept is not None:
            lines.append(f"table {step.name}: the commits csload did not make "
                         f"({described(step.commits)}) will be kept")
        else:
            ours = [c for c in step.commits if c.ours]
            lines.append(f"table {step.name}: the commits of a sync that stopped before "
                         f"recording them ({described(ours)}) will be undone")
    return lines


def _refuse_others_table(lake: LakeFS, name: str, batch: int) -> None:
    """A table folder the ledger does not name is removed only if a sync that stopped before
    its ledger's commit made it: its commits are csload's, of a batch after the ledger's last
    (`batch`). StoreError, before anything is written, for another tool's table (a lake's
    root taken from a folder of the user's own), and for a copy of a csload table or one
    renamed by hand (`cp -r views views_backup`): its commits are of batches the ledger
    records, and it was removed as a crashed sync's, with the rows of days whose files had
    expired since (QA, 2026-12-08)."""
    table = open_table(lake, name)
    if table is None:
        return
    theirs = [c for c in commits_after(lake, name, table, -1) if not c.ours and not c.housekeeping]
    if theirs:
        raise StoreError(
            f"lake {lake.root}: folder {name} holds a Delta table that csload did not make "
            f"({described(theirs)}); csload neither removes it nor loads into it. A lake's "
            "folder holds csload's tables only: sync into a folder of its own")
    with delta_errors(lake, f"read the log of table {name}"):
        made_in = table.transaction_version(APP_ID)
    if made_in is None or made_in <= batch:
        raise StoreError(
            f"lake {lake.root}: folder {name} holds a table of csload's that the lake's ledger "
            "does not name (a copy, or a table renamed by hand?); csload neither removes it "
            "nor loads into it. Move it out of the lake's folder (a table renamed by hand: "
            "give it its name back), then sync again")


def _vacuum_spares(path: str) -> bool:
    """Whether a table's vacuum leaves a file alone although the table's log does not name it:
    a file or folder right under the table's folder whose name starts with `.` or `_`
    (deltalake's rule: `_delta_log`, `.DS_Store`), or a hidden file anywhere (which it may
    remove, but is the operating system's, not the user's data)."""
    parts = path.split("/")
    return parts[1][:1] in (".", "_") or parts[-1].startswith(".")


def refuse_others_files(lake: LakeFS, name: str) -> None:
    """Before a batch creates table `name`: StoreError if its folder holds files csload did not
    write. The table's vacuum deletes every file of its folder that its log does not name (a
    crashed sync's, past the retention window), so a folder of the user's own files (their
    downloads of the exports from before csload, in a `views/` folder) would lose them a week
    later. Files of csload's shape (a crashed sync's, never committed) are left to that vacuum."""
    theirs = [f.path for f in lake.list_files(name, recursive=True)
              if not written_by_csload(f.path, name) and not _vacuum_spares(f.path)]
    if theirs:
        shown_files = ", ".join(shown(p.removeprefix(f"{name}/")) for p in theirs[:3])
        more = f" and {len(theirs) - 3} more" if len(theirs) > 3 else ""
        raise StoreError(
            f"lake {lake.root}: folder {name}, where csload would create table {name}, holds "
            f"files csload did not write ({shown_files}{more}); a table's housekeeping deletes "
            "the files of its folder that its log does not name. Nothing was written into "
            "it: move them out of the folder, or sync into a folder of its own")


def _claim(lake: LakeFS, snapshot: LakeSnapshot, txid: str) -> None:
    """The ledger committed again as the snapshot has it (the lake's first, empty, when it
    has none); LakeConflict if another sync committed it since the snapshot was read."""
    if snapshot.ledger is None:
        rows = _empty_ledger(snapshot.state)
    else:
        rows = rows_table({**snapshot.rows, STATE_ROW: snapshot.state.to_bytes()})
    commit_ledger(lake, snapshot.ledger, rows, txn=snapshot.state.batch, txid=txid,
                  configuration={})


def _undo(lake: LakeFS, snapshot: LakeSnapshot) -> LakeSnapshot:
    """Remove the tables the claimed ledger does not name, restore those a stopped sync changed
    after its versions, keep other writers' commits, and record the tables' versions; the
    lake's snapshot after it."""
    recorded = snapshot.state.tables
    txid = new_txid()
    changed = False
    steps = _plan(lake, snapshot)
    dropped = [step.name for step in steps if step.dropped]
    if dropped:
        _forget(lake, snapshot, dropped)
        changed = True
    for step in steps:
        name, table = step.name, step.table
        if step.dropped:
            continue
        if table is None:
            _remove_unrecorded(lake, name)
            continue
        if step.kept is not None:
            recorded[name] = adopt(lake, snapshot.tables[name], step.kept, step.commits)
            changed = True
            continue
        version = recorded[name].version
        log.warning("lake %s: undoing table %s's commits after version %s, which a "
                    "crashed sync made without recording them", lake.root, name, version)
        restore(lake, table, version, snapshot.state.batch, txid)
        table.update_incremental()
        recorded[name].version = table.version()
        changed = True
    if changed:
        _claim(lake, snapshot, txid)   # the snapshot now has the restored or kept versions
    return read_snapshot(lake)


def _forget(lake: LakeFS, snapshot: LakeSnapshot, tables: list[str]) -> None:
    """Forget, in the snapshot's ledger rows and state, what was loaded into `tables`, whose
    folders the user deleted: the next batches load those runs again, as a DuckDB target does
    for a dropped table (csload.load.ledger.Ledger.forget_tables)."""
    con = duckdb.connect(":memory:")
    try:
        ledger = Ledger(con)
        ledger.ensure()
        import_ledger(con, lake, snapshot.rows)
        runs = len(ledger.runs_of_tables(tables))
        ledger.forget_tables(tables)
        for name in tables:
            del snapshot.state.tables[name]
        rows = export_ledger(con, snapshot.state)
    finally:
        con.close()
    snapshot.rows = dict(zip(rows.column("name").to_pylist(), rows.column("data").to_pylist(),
                             strict=True))
    notice(log, "lake %s: the folder of table(s) %s is gone (deleted?): the %d run(s) loaded "
           "into it are loaded again", lake.root, ", ".join(tables), runs)


def _empty_ledger(state: LakeState) -> pa.Table:
    """The rows of a ledger that records nothing yet (the lake's first, made by a recovery)."""
    con = duckdb.connect(":memory:")
    try:
        Ledger(con).ensure()
        return export_ledger(con, state)
    finally:
        con.close()
