"""The project's jobs and runs: seeding, creation, the `once` queue, re-runs, and the schedule.

Runs come into being lazily: `sync(now)` creates every run whose creation time has come, in
creation order, so run ids grow with creation time whichever way the clock was moved. A daily
job's run of day D is created at D+1 `daily_run_hour`; a `once` job's run starts when the
previous `once` job's run has finished (one at a time) and walks CREATED -> RUNNABLE ->
RUNNING -> SUCCESS, `once_state_seconds` per state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from csload.api.schemas import load_schema
from csload.simulator.config import SimConfig
from csload.simulator.model import (
    CUSTOM_VAR,
    DYNAMIC_VAR,
    JobRecord,
    RunRecord,
    SimField,
    window_days,
)
from csload.simulator.validation import JobDraft, floor_day

FIRST_JOB_ID = 1119
FIRST_RUN_ID = 130348
_HOURLY_DELAY = timedelta(minutes=10)
_HOURLY_DURATION = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class _Due:
    created_at: datetime
    job_id: int
    start: datetime
    end: datetime


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def sessions_job_fields() -> tuple[SimField, ...]:
    """Every sessions field, two aliased, plus custom var 2 under its derived name."""
    aliases = {"user_id": "visitor_id", "session_time": "session_start"}
    fields = [SimField(name, aliases.get(name)) for name in load_schema("sessions").names]
    fields.append(SimField(CUSTOM_VAR, custom_var_position=2))
    return tuple(fields)


def views_job_fields() -> tuple[SimField, ...]:
    """Most views fields, some aliased, two custom vars and a dynamic var."""
    skip = {"url_no_query_param", "document_width", "start_render"}
    aliases = {"url": "page_url", "view_duration_msec": "duration_ms",
               "errors.message": "error_messages"}
    fields = [SimField(name, aliases.get(name))
              for name in load_schema("views").names if name not in skip]
    fields += [
        SimField(CUSTOM_VAR, alias_name="user_type", custom_var_position=1),
        SimField(CUSTOM_VAR, custom_var_position=3),
        SimField(DYNAMIC_VAR, dynamic_var_key="utm_campaign"),
    ]
    return tuple(fields)


def legacy_job_fields() -> tuple[SimField, ...]:
    names = ("session_id", "user_id", "session_date", "session_time", "country_code",
             "device_id", "session_duration_msec", "app_events.event_time")
    return tuple(SimField(name) for name in names)


class ProjectState:
    """Jobs and runs of the simulated project. Thread-safe: every method takes the lock."""

    def __init__(self, config: SimConfig, now: datetime) -> None:
        self._config = config
        self._lock = threading.RLock()
        self.jobs: dict[int, JobRecord] = {}
        self.runs: dict[int, RunRecord] = {}
        self._runs_by_job: dict[int, list[int]] = {}
        self._next_job_id = FIRST_JOB_ID
        self._next_run_id = FIRST_RUN_ID
        self._once_tail: datetime | None = None
        # The data revision of each day: a re-run bumps it, later runs of the day export it.
        self.day_revision: dict[date, int] = {}
        self._seed(now)

    # -- seeding ---------------------------------------------------------------------------

    def _daily_run_time(self, day: date, delay: timedelta) -> datetime:
        return _midnight(day) + timedelta(days=1) + delay

    def _seed(self, now: datetime) -> None:
        cfg = self._config
        base_delay = timedelta(hours=cfg.daily_run_hour)
        delays = (base_delay, base_delay + timedelta(minutes=3))
        duration = timedelta(seconds=cfg.daily_run_seconds)
        # The most recent day whose runs (of both main jobs) have finished by now.
        last = now.date() - timedelta(days=1)
        while self._daily_run_time(last, delays[-1]) + duration > now:
            last -= timedelta(days=1)
        first = last - timedelta(days=max(cfg.days, 0) - 1)
        first_midnight = _midnight(first)

        if cfg.seed_suspended_job:
            legacy = self._add_job(
                name="Legacy sessions (CSV)", fmt="CSV", scope="sessions", frequency="daily",
                fields=legacy_job_fields(), created_at=first_midnight - timedelta(days=4, hours=9),
            )
            legacy.suspended_at = first_midnight - timedelta(hours=1)
            legacy.next_window = first_midnight
            legacy.run_delay = base_delay + timedelta(minutes=6)
            for offset, outcome in ((2, "SUCCESS"), (1, "FAILURE")):
                day = first - timedelta(days=offset)
                created = self._daily_run_time(day, legacy.run_delay)
                self._add_run(legacy, _midnight(day), _midnight(day) + timedelta(days=1),
                              created, created + duration, outcome)

        main_jobs = (
            ("Daily sessions", "JSONL", "sessions", sessions_job_fields(), time(9, 12)),
            ("Daily pageviews", "CSV", "views", views_job_fields(), time(9, 30)),
        )
        for (name, fmt, scope, fields, at), delay in zip(main_jobs, delays, strict=True):
            job = self._add_job(
                name=name, fmt=fmt, scope=scope, frequency="daily", fields=fields,
                created_at=datetime.combine(first - timedelta(days=1), at, tzinfo=UTC),
            )
            job.next_window = first_midnight
            job.run_delay = delay
        if cfg.days > 0:
            self.sync(now)

    # -- creation ------------------------------------------------------------------------------

    def _add_job(self, *, name: str, fmt: str, scope: str, frequency: str,
                 fields: tuple[SimField, ...], created_at: datetime, device_label: str = "all",
                 segment_id: int | None = None) -> JobRecord:
        job = JobRecord(job_id=self._next_job_id, name=name, format=fmt, scope=scope,
                        frequency=frequency, fields=fields, device_label=device_label,
                        segment_id=segment_id, created_at=created_at)
        self._next_job_id += 1
        self.jobs[job.job_id] = job
        self._runs_by_job[job.job_id] = []
        return job

    def _add_run(self, job: JobRecord, start: datetime, end: datetime, created: datetime,
                 finished: datetime, outcome: str = "SUCCESS",
                 step: timedelta | None = None) -> RunRecord:
        if step is None:
            step = min(timedelta(seconds=30), (finished - created) / 3)
        run = RunRecord(
            run_id=self._next_run_id, job_id=job.job_id, start=start, end=end,
            created_at=created, runnable_at=created + step, running_at=created + 2 * step,
            finished_at=finished, outcome=outcome,
            revisions=tuple((d, self.day_revision.get(d, 0)) for d in window_days(start, end)),
        )
        self._next_run_id += 1
        self.runs[run.run_id] = run
        self._runs_by_job[job.job_id].append(run.run_id)
        return run

    def create_job(self, draft: JobDraft, now: datetime) -> JobRecord:
        with self._lock:
            self.sync(now)
            job = self._add_job(name=draft.name, fmt=draft.format, scope=draft.scope,
                                frequency=draft.frequency, fields=draft.fields,
                                created_at=now, device_label=draft.device_label,
                                segment_id=draft.segment_id)
            if draft.frequency == "once":
                job.date_from, job.date_to = draft.date_from, draft.date_to
                start = max(now, self._once_tail or now)
                job.once_start = start
                job.once_finish = start + 3 * timedelta(seconds=self._config.once_state_seconds)
                self._once_tail = job.once_finish
            elif draft.frequency == "hourly":
                job.next_window = now.replace(minute=0, second=0, microsecond=0)
                job.run_delay = _HOURLY_DELAY
            else:
                job.next_window = floor_day(now)
                job.run_delay = timedelta(hours=self._config.daily_run_hour)
            self.sync(now)
            return job

    def rerun(self, job_id: int, day: date, now: datetime) -> RunRecord:
        """A new, already successful run of `day` whose data is the day's next revision."""
        with self._lock:
            self.sync(now)
            job = self.jobs[job_id]
            self.day_revision[day] = self.day_revision.get(day, 0) + 1
            start = _midnight(day)
            return self._add_run(job, start, start + timedelta(days=1), now, now,
                                 step=timedelta(0))

    def suspend(self, job_id: int, now: datetime) -> None:
        with self._lock:
            self.sync(now)
            job = self.jobs[job_id]
            if job.frequency == "once":
                raise ValueError("only daily and hourly jobs can be suspended")
            job.suspended_at = now

    # -- the schedule ---------------------------------------------------------------------------

    def sync(self, now: datetime) -> list[int]:
        """Create every run due by `now`, oldest first; returns the new run ids."""
        with self._lock:
            due: list[_Due] = []
            for job in self.jobs.values():
                if job.frequency == "once":
                    if job.once_run_id is None and job.once_start is not None \
                            and job.once_start <= now:
                        assert job.date_from is not None and job.date_to is not None
                        due.append(_Due(job.once_start, job.job_id, job.date_from, job.date_to))
                    continue
                window = job.next_window
                if window is None:
                    continue
                while True:
                    end = window + job.period
                    created = end + job.run_delay
                    if created > now or (job.suspended_at is not None
                                         and created >= job.suspended_at):
                        break
                    due.append(_Due(created, job.job_id, window, end))
                    window = end
                job.next_window = window
            due.sort(key=lambda d: (d.created_at, d.job_id))
            new: list[int] = []
            for item in due:
                job = self.jobs[item.job_id]
                if job.frequency == "once":
                    assert job.once_finish is not None
                    step = timedelta(seconds=self._config.once_state_seconds)
                    run = self._add_run(job, item.start, item.end, item.created_at,
                                        job.once_finish, step=step)
                    job.once_run_id = run.run_id
                elif job.frequency == "hourly":
                    run = self._add_run(job, item.start, item.end, item.created_at,
                                        item.created_at + _HOURLY_DURATION)
                else:
                    run = self._add_run(job, item.start, item.end, item.created_at,
                                        item.created_at
                                        + timedelta(seconds=self._config.daily_run_seconds))
                new.append(run.run_id)
            return new

    # -- reading ----------------------------------------------------------------------------------

    def job(self, job_id: int) -> JobRecord | None:
        with self._lock:
            return self.jobs.get(job_id)

    def run(self, run_id: int) -> RunRecord | None:
        with self._lock:
            return self.runs.get(run_id)

    def job_runs(self, job_id: int) -> list[RunRecord]:
        with self._lock:
            return [self.runs[r] for r in self._runs_by_job.get(job_id, ())]

    def all_jobs(self) -> list[JobRecord]:
        with self._lock:
            return list(self.jobs.values())

    def all_runs(self) -> list[RunRecord]:
        with self._lock:
            return list(self.runs.values())
