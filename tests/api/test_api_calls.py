"""csload.jobs, job, runs, fields, custom_vars, dynamic_vars, check_job and create_job
(csload.api.calls) against the simulator over real HTTP, checked against the simulator's own
truth."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest

import csload
from csload.api.jobspec import Rule
from csload.api.schemas import load_schema
from csload.config import RetryPolicy, Settings
from csload.simulator import ServerHandle, Simulator
from csload.simulator.variables import custom_var_definitions, dynamic_var_keys
from tests.support.simenv import sim_settings
from tests.support.syncref import LEGACY_JOB, VIEWS_JOB

# The SimConfig of tests/conftest.py: runs of 3 days before 2026-11-25.
FRIDAY = date(2026, 11, 20)


FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=0.02)


@pytest.fixture
def settings(simulator: Simulator, sim_thread: ServerHandle) -> Settings:
    return sim_settings(simulator, sim_thread.base_url, retry=FAST_RETRY)


def test_jobs_lists_the_project_s_jobs_and_filters_them(settings: Settings, simulator: Simulator
                                                        ) -> None:
    everything = csload.jobs(settings=settings)
    assert [job.job_id for job in everything] == [job.job_id for job in simulator.jobs]
    assert [job.name for job in everything] == [job.name for job in simulator.jobs]

    views = csload.jobs(scope="views", settings=settings)
    assert [job.job_id for job in views] == [j.job_id for j in simulator.jobs
                                             if j.scope == "views"]
    assert views and len(views) < len(everything)

    suspended = csload.jobs(state="SUSPENDED", settings=settings)
    assert [job.job_id for job in suspended] == [LEGACY_JOB]
    assert simulator.job_state(LEGACY_JOB) == "SUSPENDED"


def test_a_bad_scope_is_refused_before_any_request(settings: Settings) -> None:
    with pytest.raises(csload.ConfigError, match=r"scope must be one of sessions, views, got "
                                                 r"'view'; did you mean views\?"):
        csload.jobs(scope="view", settings=Settings(
            client_id="x", client_secret="y", auth_url="http://127.0.0.1:9"))  # nothing there
    with pytest.raises(csload.ConfigError, match="scope"):
        csload.fields("pageviews", settings=settings)


def test_job_shows_one_job_with_its_fields(settings: Settings, simulator: Simulator) -> None:
    job = csload.job(VIEWS_JOB, settings=settings)
    truth = simulator.job(VIEWS_JOB)
    assert (job.job_id, job.name, job.scope, job.format) == (
        truth.job_id, truth.name, truth.scope, truth.format)
    assert [(f.field_name, f.alias_name, f.custom_var_position, f.dynamic_var_key)
            for f in job.fields] == [
        (f.field_name, f.alias_name, f.custom_var_position, f.dynamic_var_key)
        for f in truth.fields]

    with pytest.raises(csload.ApiRequestError) as missing:
        csload.job(987654, settings=settings)
    assert missing.value.status == 404
    with pytest.raises(csload.ConfigError, match="job_id: a job id is a positive integer"):
        csload.job(0, settings=settings)


def test_runs_are_newest_first_and_list_files_only_when_asked(
    settings: Settings, simulator: Simulator
) -> None:
    truth = simulator.runs(LEGACY_JOB)   # one SUCCESS and one FAILURE run
    assert {simulator.run_state(r.run_id) for r in truth} == {"SUCCESS", "FAILURE"}

    plain = csload.runs(LEGACY_JOB, settings=settings)
    assert [run.run_id for run in plain] == [r.run_id for r in reversed(truth)]
    assert [run.state for run in plain] == [simulator.run_state(r.run_id)
                                            for r in reversed(truth)]
    assert all(run.parts is None for run in plain)

    detailed = csload.runs(LEGACY_JOB, files=True, settings=settings)
    for run in detailed:
        if run.state == "SUCCESS":
            assert run.parts is not None
            assert len(run.parts) == len(simulator.part_bodies(LEGACY_JOB, run.run_id))
        else:
            assert run.parts is None

    successful = csload.runs(VIEWS_JOB, state="SUCCESS", settings=settings)
    assert [run.run_id for run in successful] == [
        r.run_id for r in reversed(simulator.runs(VIEWS_JOB))
        if simulator.run_state(r.run_id) == "SUCCESS"]


def test_fields_are_the_scope_s_catalogue(settings: Settings) -> None:
    for scope in ("sessions", "views"):
        found = csload.fields(scope, settings=settings)
        assert [(f.name, f.type) for f in found] == [
            (f.name, f.source_type) for f in load_schema(scope).fields]


def test_custom_vars(settings: Settings) -> None:
    found = csload.custom_vars(settings=settings)
    assert [(v.position, v.name) for v in found] == custom_var_definitions()


def test_dynamic_vars_include_both_days(settings: Settings) -> None:
    saturday = FRIDAY + timedelta(days=1)
    assert FRIDAY.weekday() == 4
    friday_only = csload.dynamic_vars(FRIDAY, FRIDAY, settings=settings)
    # The simulator shows one key on weekends only: a window one day off would show it.
    assert [(k.key, k.type) for k in friday_only] == dynamic_var_keys(FRIDAY, FRIDAY)
    with_saturday = csload.dynamic_vars(FRIDAY.isoformat(), saturday.isoformat(),
                                        settings=settings)
    assert [(k.key, k.type) for k in with_saturday] == dynamic_var_keys(FRIDAY, saturday)
    assert len(with_saturday) == len(friday_only) + 1

    with pytest.raises(csload.ConfigError, match="date_to 2026-11-19 is before date_from"):
        csload.dynamic_vars(FRIDAY, FRIDAY - timedelta(days=1), settings=settings)
    with pytest.raises(csload.ConfigError, match="date_from must be a day"):
        csload.dynamic_vars("20/11/2026", FRIDAY, settings=settings)


async def test_the_async_twins_and_a_blocking_call_inside_a_running_loop(
    settings: Settings, simulator: Simulator
) -> None:
    ids = [job.job_id for job in simulator.jobs]
    assert [job.job_id for job in await csload.jobs_async(settings=settings)] == ids
    assert (await csload.job_async(VIEWS_JOB, settings=settings)).job_id == VIEWS_JOB
    assert [r.run_id for r in await csload.runs_async(LEGACY_JOB, settings=settings)] == [
        r.run_id for r in reversed(simulator.runs(LEGACY_JOB))]
    assert len(await csload.fields_async("views", settings=settings)) == len(
        load_schema("views").fields)
    assert len(await csload.custom_vars_async(settings=settings)) == len(
        custom_var_definitions())
    assert len(await csload.dynamic_vars_async(FRIDAY, FRIDAY, settings=settings)) == len(
        dynamic_var_keys(FRIDAY, FRIDAY))
    # A notebook's cell runs in an event loop: the blocking call runs in a thread of its own.
    assert [job.job_id for job in csload.jobs(settings=settings)] == ids


def test_create_job_checks_then_creates(settings: Settings, simulator: Simulator) -> None:
    spec = csload.JobSpec(name="Daily views, narrow", format="CSV", scope="views",
                          frequency="daily",
                          fields=(csload.JobField("session_id"), csload.JobField("url")))
    before = {job.job_id for job in simulator.jobs}

    created = csload.create_job(spec, settings=settings)

    assert created.job_id not in before
    made = {job.job_id: job for job in simulator.jobs}[created.job_id]
    assert (made.name, made.scope, made.format) == ("Daily views, narrow", "views", "CSV")
    assert [f.field_name for f in csload.job(created.job_id, settings=settings).fields] == [
        "session_id", "url"]

    # A field the scope cannot export: refused by csload's own checks, nothing sent.
    bad = dataclasses.replace(spec, name="Bad", fields=(csload.JobField("no_such_field"),))
    with pytest.raises(csload.InvalidJobSpec, match="no_such_field"):
        csload.create_job(bad, settings=settings)
    assert len(simulator.jobs) == len(before) + 1
    with pytest.raises(csload.ConfigError, match="JobSpec"):
        csload.create_job({"name": "x"}, settings=settings)  # type: ignore[arg-type]


def _job_ids(simulator: Simulator) -> list[int]:
    return [job.job_id for job in simulator.jobs]


def test_check_job_lists_what_create_job_refuses_and_creates_nothing(
    settings: Settings, simulator: Simulator
) -> None:
    good = csload.JobSpec(name="Checked only", format="JSONL", scope="sessions",
                          frequency="daily", fields=(csload.JobField("session_id"),))
    # view_number is a views field: only the sessions catalogue, read from the API, says so.
    bad = dataclasses.replace(good, name=" ", frequency="weekly", fields=(
        csload.JobField("session_id"), csload.JobField("view_number"),
        csload.JobField("session_id")))
    before = _job_ids(simulator)

    assert csload.check_job(good, settings=settings) == []
    problems = csload.check_job(bad, settings=settings)

    assert [(p.rule, p.detail) for p in problems] == [
        (Rule.NAME, "the name is empty"),
        (Rule.FREQUENCY, "frequency 'weekly' is not allowed"),
        (Rule.UNKNOWN_FIELD, "'view_number' is not an exportable field of scope 'sessions' "
                             "(see `csload fields --scope sessions`)"),
        (Rule.DUPLICATE_FIELD, "'session_id' is given more than once"),
        (Rule.COLUMN, "fields 1 and 3 would both be column 'session_id'")]
    assert all(isinstance(problem, csload.Problem) for problem in problems)
    assert simulator.stats.requests["exportable_fields"] == 2
    # Checking only: not even the good spec was created.
    assert _job_ids(simulator) == before
    assert simulator.stats.requests["create_job"] == 0

    # create_job makes the same check: it refuses the bad spec for exactly those problems.
    with pytest.raises(csload.InvalidJobSpec) as refused:
        csload.create_job(bad, settings=settings)
    assert list(refused.value.problems) == problems
    assert simulator.stats.requests["create_job"] == 0
    with pytest.raises(csload.ConfigError, match="JobSpec"):
        csload.check_job({"name": "x"}, settings=settings)  # type: ignore[arg-type]


async def test_check_job_async_checks_and_creates_nothing(settings: Settings,
                                                          simulator: Simulator) -> None:
    spec = csload.JobSpec(name="Async check", format="CSV", scope="views", frequency="once",
                          fields=(csload.JobField("session_id"),))
    before = _job_ids(simulator)

    problems = await csload.check_job_async(spec, settings=settings)

    assert [problem.rule for problem in problems] == [Rule.ONCE_RANGE]
    assert await csload.check_job_async(dataclasses.replace(spec, frequency="hourly"),
                                        settings=settings) == []
    assert _job_ids(simulator) == before
    assert simulator.stats.requests["create_job"] == 0
