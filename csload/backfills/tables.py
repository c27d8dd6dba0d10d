"""The tables a backfill loads into: the one `csload sync` gives a job (`--like`), and the
checks before any job is created that the backfill's fields fit the table they go to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from csload.api.models import Job
from csload.backfills.plan import Template
from csload.errors import ConfigError
from csload.load.backfill_names import left_to_backfill
from csload.load.columns import layout_problem
from csload.load.ledger import Ledger
from csload.load.placement import (
    Placement,
    columns_of,
    difference,
    place_jobs,
    placed_owner,
    table_owner,
)
from csload.pipeline.plan import check_project

if TYPE_CHECKING:
    from csload.api.client import ExportClient
    from csload.backfills.ledgers import BackfillLedgers
    from csload.config import Settings
    from csload.target import Target


class BackfillTables:
    """What a backfill asks of the target's tables and the project's jobs."""

    def __init__(self, settings: Settings, client: ExportClient, db: BackfillLedgers,
                 target: Target) -> None:
        self.settings = settings
        self.client = client
        self.db = db
        self.target = target

    async def table_of(self, job_id: int) -> str | None:
        return self.settings.tables.get(job_id) or await self.db.run(
            lambda ledger: ledger.job_table(job_id))

    async def placed_table(self, job: Job) -> str:
        """The table `csload sync` gives the job: the one it loaded into or is mapped to, else
        by the placement rule over every job of the project (csload.load.placement). A job the
        target has not seen yet with other fields than the scope table's gets a table of its
        own (`--like` a colleague's narrow job used to aim at the scope table, and was
        refused)."""
        placement = (await self.sync_placements()).get(job.job_id)
        if placement is None:   # not listed (deleted since): the scope's table, as before
            return job.scope
        if placement.refused:
            # Its table is no table it loads into: a job waiting for one that cannot be read
            # aimed the backfill at `views`, which it then took (QA, 2026-12-08).
            raise ConfigError(f"--like {job.job_id}: csload sync refuses that job, so it has "
                              f"no table to share ({placement.refused}); name the backfill's "
                              "table (--table NAME)")
        return placement.table

    async def sync_placements(self, mine: tuple[Job, str] | None = None
                              ) -> dict[int, Placement]:
        """Where `csload sync` places each job of the project on this target (the jobs other
        backfills made left out, as the sync leaves them: csload.pipeline.plan), with `mine`
        (a backfill's job, mapped to its table, as its sync maps it) when given."""
        known = await self.db.run(lambda ledger: ledger.known_jobs())
        held = await self.db.run(lambda ledger: ledger.loaded_tables())
        listed = await self.client.list_jobs(keep_unreadable=True)
        left = left_to_backfill(listed, known, self.settings.tables)
        jobs = [job for job in listed if job.job_id not in left]
        mapped = dict(self.settings.tables)
        if mine is not None:
            jobs.append(mine[0])
            mapped[mine[0].job_id] = mine[1]
        return place_jobs(jobs, known, mapped, loaded_into=held)

    async def check(self, templates: Sequence[Template]) -> None:
        """A backfill loads into a table whose jobs export the same columns (csload.load.placement:
        a run replaces whole rows, so other columns would be erased), and never into a table
        csload did not make nor a lake folder of the user's files; else, an error before any
        job is created."""
        known = await self.db.run(lambda ledger: ledger.known_jobs())
        # Another project's target: refused before any job is created (the sync that loads the
        # backfill's runs would refuse them, csload.pipeline.plan.check_project).
        recorded = await self.db.run(lambda ledger: Ledger(ledger.con).project_id())
        check_project(self.target.label, recorded, self.client.project_id)
        for template in templates:
            table = template.table or template.scope
            await self.db.refuse_foreign(table)   # the user's own table, or files of theirs
            mine = Job(job_id=0, name="backfill", format=template.format, scope=template.scope,
                       frequency="once", fields=template.fields)
            unloadable = layout_problem(mine, self.target.reserved_columns)
            if unloadable is not None:   # a lake's `date` (the rest is check_jobs')
                raise ConfigError(f"the backfill's fields cannot be loaded into {table!r}: "
                                  f"{unloadable}; give the field another alias (--field "
                                  "NAME:ALIAS)")
            # On a new target, the job a sync would give the table: a backfill of other
            # fields took `sessions` there, and the main job went to a table of its own for
            # good (QA, 2026-12-08).
            owner = table_owner(table, known)
            holds, harm = "holds", "would erase the columns they lack"
            if owner is None:
                placements = await self.sync_placements((mine, table))
                owner, holds = placed_owner(table, placements), "is for"
                harm = "would take the table first, and send that job to a table of its own"
                blocker = placements[mine.job_id].waits_for
                if blocker is not None:
                    raise ConfigError(
                        f"table {table!r} waits for job {blocker.job_id} ({blocker.name}), "
                        "whose definition cannot be read: it may take the table and its "
                        "columns, and the backfill's jobs would wait for it. Name a table of "
                        "their own (--table NAME)")
            if owner is not None and columns_of(owner) != columns_of(mine):
                raise ConfigError(
                    f"table {table!r} {holds} the columns of job {owner.job_id} ({owner.name}), "
                    f"and the backfill's fields differ ({difference(mine, owner)}): loading "
                    f"them there {harm}. Export the table's fields (--like {owner.job_id}), or "
                    "name a table of their own (--table NAME)")
