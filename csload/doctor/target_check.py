"""The `target` check: the DuckDB database or Delta lake `csload sync` would write, with the
same options (`db`, `parquet`); whether csload can write there and read its ledger.

Doctor creates nothing a sync would: a database that does not exist yet is not created (its
folder is checked instead), and a lake's ledger is read without taking its lock. The one write
is an S3 lake's: a small probe object put under `_csload/` and deleted at once, the only way to
know that the credentials may write there. Blocking: run it in a worker thread.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from csload.api.models import Job
from csload.api.schemas import SCOPES
from csload.doctor.report import Check, Verdict, clean
from csload.errors import (
    ConfigError,
    CsloadError,
    InsecureUrlError,
    StoreError,
    StoreLockedError,
)
from csload.load.backfill_names import left_to_backfill
from csload.load.duckdb import connect
from csload.load.ledger import Ledger
from csload.load.placement import place_jobs
from csload.load.status import StoreStatus
from csload.pipeline.plan import Seen, check_project, seen_of, seen_of_db_read_only
from csload.target import Target, status


def check_target(check: Check, *, db: str | Path | None = None,
                 parquet: str | Path | None = None,
                 storage_options: Mapping[str, str] | None = None,
                 auth_url: str | None = None, project_id: int | None = None,
                 jobs: Sequence[Job] | None = None, mapped: Mapping[int, str] | None = None,
                 ) -> None:
    """`auth_url`: the settings' (the sync's https rule for a lake's endpoint), else None;
    `project_id`: the project the credentials are for, when known (a target holds one);
    `jobs`: the project's, as the API lists them, and `mapped` the settings' `[tables]`: the
    jobs a sync of this target would refuse are said (`check_placement`)."""
    target = _check_target(check, db=db, parquet=parquet, storage_options=storage_options,
                           auth_url=auth_url, project_id=project_id)
    if target is not None and jobs is not None:
        check_placement(check, target, jobs, mapped or {})


def check_placement(check: Check, target: Target, jobs: Sequence[Job],
                    mapped: Mapping[int, str]) -> None:
    """Warn of the jobs a sync of the target refuses, as the sync places them
    (csload.load.placement over the target's ledger): every sync exits 3 on them, while
    `csload status` cannot say so (its ledger holds no refusal) and this check said "ok"
    once the target had a ledger."""
    read = seen_of if target.is_lake else seen_of_db_read_only
    try:
        seen = target.read_ledger(read, without_ledger=not target.is_lake) or Seen(set(), {})
    except CsloadError as exc:   # read a moment ago: another process took it since
        check.details.append(f"the jobs' tables were not checked: {clean(exc, 300)}")
        return
    left = left_to_backfill(jobs, seen.jobs, mapped)
    listed = [job for job in jobs if job.job_id not in left]
    placements = place_jobs(listed, seen.jobs, mapped, seen.foreign, target.reserved_columns,
                            seen.loaded_into)
    ids = {job.job_id for job in listed}
    refused = [p for p in placements.values() if p.refused and p.job.job_id in ids]
    if not refused:
        return
    check.details += [f"refused: {clean(p.note, 300)}" for p in refused]
    check.data["refusedJobs"] = [p.job.job_id for p in refused]
    check.set(Verdict.WARN, f"{clean(check.summary, 300)}; but every sync refuses "
              f"{len(refused)} job(s) (exit 3): "
              + ", ".join(str(p.job.job_id) for p in refused),
              "the `refused:` lines say why and what to do (a [tables] line in csload.toml, "
              "or another job)")


def _check_target(check: Check, *, db: str | Path | None, parquet: str | Path | None,
                  storage_options: Mapping[str, str] | None, auth_url: str | None,
                  project_id: int | None) -> Target | None:
    """The target, once what it holds could be read (none: a new one); else None."""
    try:
        target = Target.of(db=db, parquet=parquet, storage_options=storage_options or {},
                           auth_url=auth_url)
    except InsecureUrlError as exc:
        check.set(Verdict.FAIL, clean(exc), "use an https endpoint_url for the lake (plain "
                  "http only to this machine, against the simulator)")
        return None
    except CsloadError as exc:
        check.set(Verdict.FAIL, clean(exc), "pass either --db or --parquet")
        return None
    check.data = {"target": clean(target.label), "kind": "lake" if target.is_lake else "duckdb"}
    try:
        present = _check_lake(check, target) if target.is_lake else _check_db(check, target)
    except StoreLockedError as exc:
        check.set(Verdict.WARN, f"{clean(exc)}; its ledger was not read",
                  "run doctor again once that sync has finished")
        return None
    except CsloadError as exc:
        # Whole: a message naming a lake's missing file ends with its fix.
        check.set(Verdict.FAIL, clean(exc, 1000),
                  "check the path (or bucket), its permissions and the free space")
        return None
    if not present:   # a new target (placed against no ledger), or one that failed
        return None if check.verdict is Verdict.FAIL else target
    try:
        ledger_status = status(target.db, parquet=target.parquet,
                               storage_options=target.storage_options)
    except CsloadError as exc:
        check.set(Verdict.FAIL, f"{clean(target.label)} is writable, but its ledger cannot be "
                  f"read: {clean(exc)}",
                  "a damaged ledger needs a new target; `csload status` shows the same error")
        return None
    try:   # the project the status read from the ledger, not a second read of it
        check_project(clean(target.label), ledger_status.project, project_id)
    except ConfigError as exc:
        check.set(Verdict.FAIL, clean(exc, 600), "give this project a target of its own")
        return None
    _summarise(check, target, ledger_status)
    return target


def _writable_folder(check: Check, folder: Path, what: str) -> bool:
    if not folder.is_dir():
        check.set(Verdict.FAIL, f"cannot create {what}: folder {clean(folder)} does not exist",
                  "create the folder, or pass another --db / --parquet")
        return False
    if not os.access(folder, os.W_OK | os.X_OK):
        check.set(Verdict.FAIL, f"folder {clean(folder)} is not writable ({what} and the "
                  "staging of downloads go there)",
                  "fix its permissions, or pass another --db / --parquet")
        return False
    return True


def _check_db(check: Check, target: Target) -> bool:
    """Whether the database exists with a ledger to read; the verdict otherwise."""
    assert target.db is not None
    path = target.db
    if not _writable_folder(check, path.parent.absolute(), f"the database {path}"):
        return False
    if not path.exists():
        check.set(Verdict.OK, f"{clean(path)} does not exist yet: the first sync creates it "
                  "(its folder is writable)")
        return False
    # Read-write, as a sync opens it: proves it is a DuckDB file this user may write, and that
    # no other process holds it (StoreLockedError).
    con = connect(path)
    try:
        ledger = Ledger(con)
        has_ledger = ledger.exists()
        foreign = sorted(ledger.foreign_tables())
    finally:
        con.close()
    if foreign:
        shown = ", ".join(clean(t, 60) for t in foreign[:10])
        check.details.append(f"tables of yours (csload never loads into them): {shown}"
                             + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else ""))
    if not has_ledger:
        taken = [t for t in foreign if t in SCOPES]
        if taken:
            check.set(Verdict.WARN, f"{clean(path)} already has a table of yours named "
                      f"{', '.join(taken)}: the first sync refuses the jobs it would load there",
                      "map them to other tables ([tables] in csload.toml: "
                      "`csload sync --dry-run` shows the lines to write), or give csload a "
                      "database of its own")
        else:
            check.set(Verdict.OK, f"{clean(path)} is writable; it has no csload ledger yet: "
                      "the first sync adds its tables")
        return False
    return True


def _check_lake(check: Check, target: Target) -> bool:
    from csload.lake.fs import LakeFS
    from csload.lake.reader import refuse_missing_files
    from csload.lake.recovery import preview
    from csload.lake.snapshot import read_snapshot

    assert target.parquet is not None
    lake = LakeFS.open(target.parquet, target.storage_options)
    lake.check_usable()
    if lake.local:
        root = lake.local_path()
        if not root.exists():
            if _writable_folder(check, root.parent, f"the lake {lake.root}"):
                check.set(Verdict.OK, f"{clean(lake.root)} does not exist yet: the first sync "
                          "creates it (its folder is writable)")
            return False
        if not _writable_folder(check, root, f"the lake {lake.root}"):
            return False
    else:
        probe = f"_csload/doctor-probe-{secrets.token_hex(6)}"
        try:
            lake.write_bytes(probe, b"csload doctor: can this lake be written?\n")
            lake.delete_files([probe])
        except CsloadError as exc:
            raise StoreError(f"lake {lake.root} is not writable: {exc}") from None
    try:
        # What the next sync's open does first: undo a stopped sync's commits, keep or refuse
        # another writer's (docs/lake.md, "Writing to the tables").
        check.data["nextSync"] = [clean(line, 300) for line in preview(lake)]
    except StoreError as exc:
        check.set(Verdict.FAIL, f"a sync would refuse the lake: {clean(exc, 600)}",
                  "do what the message says; docs/lake.md, \"Writing to the tables\"")
        return False
    snapshot = read_snapshot(lake)
    if not snapshot.exists:
        check.set(Verdict.OK, f"{clean(lake.root)} is writable; no csload ledger yet: the "
                  "first sync writes it")
        return False
    refuse_missing_files(lake, snapshot)   # it said ok while every sync into the table failed
    return True


def _summarise(check: Check, target: Target, status: StoreStatus) -> None:
    loaded = sum(1 for _ in status.tables)
    check.details += [f"table {clean(t.table)}: {t.rows} rows"
                     + (f", {t.first_date} to {t.last_date}" if t.first_date else "")
                     for t in status.tables]
    check.details += [f"job {j.job_id} ({clean(j.name, 60)}) -> {clean(j.table)}"
                      + (f", {len(j.gaps)} day(s) missing" if j.gaps else "")
                      for j in status.jobs]
    check.details += [f"next sync: {line}" for line in check.data.get("nextSync", [])]
    check.data.update(tables=loaded, jobs=len(status.jobs), failedRuns=len(status.failed),
                      expiredRuns=len(status.expired))
    check.set(Verdict.OK, f"{clean(target.label)} is writable and its ledger readable: "
              f"{len(status.jobs)} job(s) into {loaded} table(s), {len(status.failed)} failed "
              f"and {len(status.expired)} expired run(s) recorded")
