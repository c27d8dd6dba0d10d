"""Which table each job loads into, so that no run ever erases values it did not export.

Why this exists: a later run replaces a key's *whole* row (csload.load.supersede, the key
rule). Two jobs that export different fields into one table therefore erase each other's
columns: a colleague's narrow "Mobile views" job (session_id, view_number, url) emptied 35 of
the 38 columns of every mobile pageview the main job had loaded. So csload keeps one field set
per table (docs/loading.md, "Which table a job loads into"):

* A table holds the rows of jobs that export the same columns: the same column names carrying
  the same fields (`columns_of`). Filters do not matter: a device- or segment-filtered copy of
  the main job exports the same values for the keys it has, so it shares the main table and
  its rows replace the same rows with the same values.
* A job loads into, in this order:
  1. the table it is mapped to (csload.toml `[tables]`, `--table`, `tables=`);
  2. else the table it loaded into before (the ledger's): a job never moves by itself;
  3. else the table named after its scope, when that table has no job yet or its jobs export
     the same columns (a job mapped elsewhere since counts for the table whose rows it left:
     `loaded_into`);
  4. else a table of its own, `<scope>_job_<id>`.
  Jobs new to the target are placed recurring jobs first (daily, hourly: the project's feeds,
  before `once` jobs), then jobs of all the traffic before device- or segment-filtered ones,
  then widest first (most fields), then by lowest job id, over every job of the project, not
  only the ones a sync selects: on a new database the main daily job gets the scope's table
  whatever order jobs were created, listed or synced in. Jobs mapped to a scope's table that
  holds no rows yet compete with them in that order (a mapping does not push the main job
  out: the mapped job is refused if its columns differ).
* A job whose columns differ from those of its table (mapped so by hand, or placed so by a
  csload older than this rule) is refused: none of its runs is loaded, the sync says why and
  what to write in csload.toml, and exits 3. The columns a table holds are those of the jobs
  that loaded into it first: its first job (in the order above) already in the ledger, else
  its first new job.
* A job placed in a table of a DuckDB target that csload did not make (the user's own, in a
  database they gave csload: no job or run of the ledger names it) is refused the same way:
  csload never adds its columns to, nor loads into, a table of the user's.
* A job whose definition the API's job list does not give whole (a field csload cannot read:
  `Job.unreadable`) is refused alone; its table, if it loaded before, keeps the columns of the
  ledger's copy. A new such job holds the table it is mapped to, else its scope's table for
  the jobs it may be placed before (a recurring one before all; a `once` one before `once`
  jobs): they are refused meanwhile ("waits for"), as its columns are unknown and the table
  would otherwise go to whichever job could be read first. A deleted or suspended one holds
  none.

Not chosen: merging rows column by column (a key's row holding, per column, the value of the
latest run that exported it). A re-run of a filtered job that no longer has a key removes the
key's row, which would take the other jobs' columns with it; getting that right needs
per-column lineage on every row, and analysts would meet rows that no single export produced.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from csload.api.models import Job, normalize_identifier
from csload.load.columns import NEW_ALIASES, layout_problem

# One column of a job as far as sharing a table goes: its name, and the field it carries.
ColumnSpec = tuple[str, str, int | None, str | None]


def columns_of(job: Job) -> frozenset[ColumnSpec]:
    """The columns a job's rows have: (column name, field, custom var position, dynamic key)."""
    return frozenset((normalize_identifier(f.column_name), f.field_name, f.custom_var_position,
                      f.dynamic_var_key) for f in job.fields)


def own_table(job: Job) -> str:
    """The table of a job whose columns differ from its scope table's."""
    return f"{job.scope}_job_{job.job_id}"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one job's runs load, and why."""

    job: Job
    table: str
    how: str                    # "mapped", "loaded before", "scope table", "own table"
    new: bool                   # the target has not seen this job before
    refused: str | None = None  # why none of its runs is loaded (None: they are)
    moved_from: str | None = None  # mapped away from the table it loaded into before
    # Of a refused job: its runs the refusal keeps out of the target (None: not counted).
    # None left (a suspended job whose runs an older csload loaded): the sync is not
    # incomplete for it, where every sync exited 3 (csload.pipeline.report).
    unloaded: int | None = None
    # The job that cannot be read this one waits for (it may own this job's table).
    waits_for: Job | None = None

    @property
    def note(self) -> str:
        """One line for people: the job, its table, and why."""
        name = f" ({self.job.name})" if self.job.name else ""
        head = f"job {self.job.job_id}{name} -> table {self.table}"
        if self.refused:
            left = ("" if self.unloaded is None else " (no run of it is left to load)"
                    if self.unloaded == 0 else
                    f" ({self.unloaded} run{'s' if self.unloaded > 1 else ''} not loaded)")
            return f"{head}: refused{left}: {self.refused}"
        why = {"mapped": "mapped to this table", "loaded before": "as before",
               "scope table": "the table of its scope",
               "own table": "its own table: its fields differ from those of table "
                            f"{self.job.scope}"}[self.how]
        if self.moved_from:
            why += f"; moved from table {self.moved_from}, where its earlier rows stay"
        return f"{head} ({'new job, ' if self.new else ''}{why})"

    @property
    def stopped(self) -> bool:
        """A daily or hourly job that Contentsquare runs no more (state SUSPENDED): its table
        stops at its last run, which `csload status` cannot tell from a gap-free job."""
        return self.job.frequency in ("daily", "hourly") and self.job.state == "SUSPENDED"

    def to_json(self) -> dict[str, object]:
        return {"jobId": self.job.job_id, "name": self.job.name, "table": self.table,
                "how": self.how, "new": self.new, "refused": self.refused,
                "movedFrom": self.moved_from, "state": self.job.state,
                "runsNotLoaded": self.unloaded}


def filtered(job: Job) -> bool:
    """Whether the job exports part of the project's traffic: one device or one segment."""
    return (job.device_label or "all").lower() != "all" or job.segment_id is not None


def _kind_rank(job: Job) -> tuple[bool, bool]:
    """Recurring jobs (the project's feeds) before `once` jobs (a look at some days), then
    jobs of all the traffic before filtered ones (a colleague's mobile-only copy with one more
    field took `views` from the main job, which left the scope's table mobile-only: QA,
    2026-12-08). What a job's fields cannot change: `_blocker` ranks by it alone."""
    return job.frequency == "once", filtered(job)


def _widest_first(jobs: Iterable[Job]) -> list[Job]:
    """By `_kind_rank`, then the most fields, then the oldest."""
    return sorted(jobs, key=lambda job: (*_kind_rank(job), -len(columns_of(job)), job.job_id))


def table_owner(table: str, known: Mapping[int, tuple[Job, str]]) -> Job | None:
    """The job whose columns `table` holds, among the jobs the ledger has in it (None: no
    job loaded into it yet)."""
    group = [job for job, job_table in known.values() if job_table == table]
    return _widest_first(group)[0] if group else None


def placed_owner(table: str, placements: Mapping[int, Placement]) -> Job | None:
    """The job whose columns `table` takes among `placements` (place_jobs'; None: no job
    loads into it)."""
    group = [p.job for p in placements.values() if p.table == table and not p.refused]
    return _widest_first(group)[0] if group else None


def _some(names: set[str]) -> str:
    shown = ", ".join(sorted(names)[:5])
    return f"{shown}, ..." if len(names) > 5 else shown


def difference(job: Job, reference: Job) -> str:
    mine = {c[0] for c in columns_of(job)}
    theirs = {c[0] for c in columns_of(reference)}
    parts = []
    if theirs - mine:
        parts.append(f"lacks {len(theirs - mine)} of its columns ({_some(theirs - mine)})")
    if mine - theirs:
        parts.append(f"has {len(mine - theirs)} it does not ({_some(mine - theirs)})")
    return " and ".join(parts) or "exports the same names for other fields"


def _refusal(job: Job, table: str, reference: Job) -> str:
    return (f"its columns differ from those of table {table!r}, which holds job "
            f"{reference.job_id}'s ({difference(job, reference)}); a later run replaces "
            "whole rows, so loading it there would erase the columns it does not export. "
            f"Map it to a table of its own in csload.toml: [tables] {job.job_id} = "
            f"\"{own_table(job)}\"")


def users_table(table: str) -> str:
    """Why csload does not load into `table`, a table of the user's own (for a refusal)."""
    return (f"the database already has a table {table!r} that csload did not make (a table "
            "of yours?); csload loads into none of those")


def _foreign_refusal(job: Job, table: str, foreign: Collection[str]) -> str:
    other = own_table(job)
    while other in foreign or other == table:   # a name of the user's too: csload_..._
        other = f"csload_{other}"
    return (f"{users_table(table)}. Map the job to another table in csload.toml: [tables] "
            f"{job.job_id} = \"{other}\", or sync into a database of its own")


def _claims(jobs: Mapping[int, Job], known: Mapping[int, tuple[Job, str]],
            mapped: Mapping[int, str]) -> dict[str, list[tuple[Job, bool]]]:
    """The tables a job new to the target that cannot be read may own once it can: the one
    it is mapped to (it holds it for every job: True), else its scope's (it holds it for the
    jobs it would be placed before: False). A deleted job holds none (a deleted colleague's
    job held `views` from the main job for good: QA, 2026-12-08); a suspended one does (its
    runs may still be loaded: the main job, suspended, lost `views` to a narrow job)."""
    out: dict[str, list[tuple[Job, bool]]] = {}
    for job_id, job in jobs.items():
        if job.unreadable and job_id not in known and (job.state or "").upper() != "DELETED":
            table = mapped.get(job_id, job.scope)
            out.setdefault(table, []).append((job, job_id in mapped))
    return out


def _blocker(claims: Iterable[tuple[Job, bool]], job: Job) -> Job | None:
    """The job that cannot be read that `job` waits for, among a table's `claims`: one mapped
    there, or one the rule may place before `job` (by `_kind_rank`: its fields are unknown; a
    mobile-only job held `views` from the main job: QA, 2026-12-08)."""
    return next((other for other, always in claims
                 if always or _kind_rank(other) <= _kind_rank(job)), None)


def _waits_for(job: Job, blocker: Job, table: str) -> str:
    # Mapping it to the held table itself would give the table its columns: its own.
    return (f"it waits for job {blocker.job_id}, whose definition cannot be read: that job "
            f"may take table {table!r} and its columns. To load this job now, map it to a "
            f"table of its own in csload.toml: [tables] {job.job_id} = \"{own_table(job)}\"")


def _load_problem(job: Job, reserved: Mapping[str, str] | None) -> str | None:
    """Why none of `job`'s runs can be loaded whatever its table, or None."""
    if job.unreadable:
        return (f"Contentsquare's definition of the job cannot be read ({job.unreadable}), so "
                "its columns are unknown; it loads once csload can read it (tell the csload "
                "maintainers: `csload doctor --save DIR` keeps the answer)")
    problem = layout_problem(job, reserved)
    return None if problem is None else \
        f"csload cannot load its columns: {problem}; {NEW_ALIASES}"


def place_jobs(listed: Iterable[Job], known: Mapping[int, tuple[Job, str]],
               mapped: Mapping[int, str], foreign: Collection[str] = (),
               reserved: Mapping[str, str] | None = None,
               loaded_into: Mapping[str, Collection[int]] | None = None,
               ) -> dict[int, Placement]:
    """The placement of every job: `listed` (the project's jobs, as the API lists them now),
    `known` (the target's ledger: job id -> (job, table)), `mapped` (job id -> table, from
    the settings), `foreign` (tables of the target that csload did not make: a job placed
    in one is refused), `reserved` (column names the target keeps: csload.load.columns.
    layout_problem), `loaded_into` (table -> the jobs whose rows it holds: Ledger.
    loaded_tables). Jobs only the ledger knows (deleted at Contentsquare since) are placed
    too: their tables keep their columns. A job whose columns csload cannot load (a name
    csload keeps, two columns of one name) is refused before its runs are downloaded, and
    holds no table's columns."""
    jobs = {job_id: job for job_id, (job, _table) in known.items()}
    jobs.update({job.job_id: job for job in listed})
    unloadable = {job_id: problem for job_id, job in jobs.items()
                  if (problem := _load_problem(job, reserved)) is not None}
    # A job the target loaded whose definition Contentsquare's list no longer gives whole
    # (Job.unreadable) is refused, but its rows are in its table: the table keeps its columns,
    # those of the ledger's copy, so that no narrower job takes it meanwhile.
    loaded_unreadable = {job_id for job_id, job in jobs.items()
                         if job.unreadable and job_id in known}
    for job_id in loaded_unreadable:
        jobs[job_id] = replace(known[job_id][0], unreadable=jobs[job_id].unreadable)
    holding = {job_id for job_id in jobs
               if job_id not in unloadable or job_id in loaded_unreadable}
    placed: dict[int, tuple[str, str]] = {}
    for job_id in jobs:
        if job_id in mapped:
            placed[job_id] = (mapped[job_id], "mapped")
        elif job_id in known:
            placed[job_id] = (known[job_id][1], "loaded before")
    members: dict[str, list[Job]] = {}
    for job_id, (table, _how) in placed.items():
        if job_id in holding:
            members.setdefault(table, []).append(jobs[job_id])
    # A table's columns are those of the jobs that loaded into it first: its widest job in
    # the ledger, else its widest job whose rows it holds (one mapped elsewhere since: a
    # narrow job took a table whose jobs had all moved away for one with no job yet, and
    # erased 35 of the 38 columns of the rows it replaced; found by QA, 2026-12-07), else
    # its widest job mapped to it.
    held = {table: [jobs[j] for j in job_ids if j in holding]
            for table, job_ids in (loaded_into or {}).items()}
    new_jobs = _widest_first(j for j in jobs.values() if j.job_id not in placed)
    claims = _claims(jobs, known, mapped)
    waiting: dict[int, Job] = {}
    reference: dict[str, Job] = {}
    for table in {*members, *held}:
        group = members.get(table, [])
        before = [job for job in group if job.job_id in known and known[job.job_id][1] == table]
        rivals: list[Job] = []
        if not (before or held.get(table)):
            # A scope's table no job has loaded into yet: the jobs mapped to it compete with
            # the new jobs the rule would put there, or a mapping (`--table 1119=sessions`)
            # took the table from the main job, which the next syncs then kept in a table of
            # its own. Those a job that cannot be read may come before wait for it.
            for job in group:
                if (blocker := _blocker(claims.get(table, ()), job)) is not None:
                    waiting[job.job_id] = blocker
            group = [job for job in group if job.job_id not in waiting]
            rivals = [job for job in new_jobs if job.scope == table and job.job_id not in
                      unloadable and _blocker(claims.get(table, ()), job) is None]
        # Among them, the table's own scope first: a sessions job mapped to `views` took it
        # from the main views job, 48 columns against 38 (QA, 2026-12-08).
        holders = before or held.get(table) or (
            [job for job in [*group, *rivals] if job.scope == table] if rivals else []
        ) or group
        if holders:
            reference[table] = _widest_first(holders)[0]
    for job in new_jobs:
        if job.job_id in unloadable:   # shown where it would go: its claim, if it cannot be read
            placed[job.job_id] = ((job.scope, "scope table") if job.unreadable and job.scope
                                  else (own_table(job), "own table"))
            continue
        # A new job that cannot be read may be the widest of its scope, whose columns the
        # scope's table would take: no job takes that table before it can be read, so that
        # the placement does not depend on it (which jobs are read, selected or listed).
        blocker = (None if job.scope in reference else
                   _blocker(claims.get(job.scope, ()), job))
        if blocker is not None:
            placed[job.job_id], waiting[job.job_id] = (job.scope, "scope table"), blocker
            continue
        owner = reference.setdefault(job.scope, job)
        table, how = ((job.scope, "scope table") if columns_of(owner) == columns_of(job)
                      else (own_table(job), "own table"))
        reference.setdefault(table, job)
        placed[job.job_id] = (table, how)
    out: dict[int, Placement] = {}
    for job_id, (table, how) in placed.items():
        job, holder = jobs[job_id], reference.get(table)
        refused = (unloadable[job_id] if job_id in unloadable
                   else _waits_for(job, waiting[job_id], table) if job_id in waiting
                   else _foreign_refusal(job, table, foreign) if table in foreign
                   else None if holder is None or columns_of(job) == columns_of(holder)
                   else _refusal(job, table, holder))
        earlier = known[job_id][1] if job_id in known else None
        out[job_id] = Placement(job, table, how, new=job_id not in known, refused=refused,
                                moved_from=earlier if earlier not in (None, table) else None,
                                waits_for=waiting.get(job_id))
    return out
