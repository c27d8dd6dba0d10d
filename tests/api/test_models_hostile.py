"""Ids out of range in API answers (issue 16): negative, zero, huge or repeated ids from the
API became file names (`part--0001`), ledger keys and SQL parameters, or were dropped.

Each test runs a real `csload sync` (the CLI, in-process) over real HTTP against the simulator
with one of its answers rewritten on the way out (`Tampered`: the simulator's own app with a
middleware of the test's, as a hostile or broken API would answer), into a real DuckDB file.

    finding                                     csload now
    a run detail with a part id out of range    that run fails (job, run, file, value);
    (-1, 0, 2^63, 5,000 digits) or twice        the other runs load exactly; exit 3
    a job list with a job id out of range       the sync fails before loading: one line naming
                                                the job, the field and the value; exit 1
    a job of the list with a segmentId,         that job is refused alone (job, key, value);
    customVarPosition, fields or time that      the others load exactly; exit 3; it loads once
    cannot be read                              the list is right
    a run list with a run id out of range       the sync fails before loading, in one line
    custom variables with a position out of     a warning; every run loads; exit 0
    range
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from csload.cli import main
from csload.simulator import ServerHandle, SimConfig
from tests.support.tampered import (
    Edit,
    Tampered,
    list_twice,
    set_field_value,
    set_job_value,
    set_position,
)


@pytest.fixture
def simulator(sim_config: SimConfig) -> Tampered:
    return Tampered(sim_config)


@pytest.fixture
def cli(simulator: Tampered, sim_thread: ServerHandle, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """`csload ARGS...` against the simulator, in a folder of its own."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("CONTENTSQUARE_", "CSLOAD_")):
            monkeypatch.delenv(name)
    env = dict(line.split("=", 1) for line in simulator.config.env_lines(sim_thread.base_url))

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    yield run


@pytest.fixture
def sync(cli: Callable[..., Result], tmp_path: Path) -> Callable[[], Result]:
    """`csload sync --db cs.duckdb --json` against the simulator, in a folder of its own."""
    return lambda: cli("sync", "--db", str(tmp_path / "cs.duckdb"), "--json")


def output_of(result: Result) -> str:
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


def rows_by_run(db: Path) -> dict[int, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute(
            "SELECT DISTINCT table_name FROM _csload.runs WHERE status = 'loaded'").fetchall()]
        counts: dict[int, int] = {}
        for table in tables:
            for run_id, count in con.execute(
                    f'SELECT _run_id, count(*) FROM "{table}" GROUP BY 1').fetchall():  # noqa: S608
                counts[int(run_id)] = int(count)
        return counts
    finally:
        con.close()


def loaded_runs(db: Path) -> list[int]:
    if not db.exists():
        return []
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r for (r,) in con.execute(
            "SELECT run_id FROM _csload.runs WHERE status = 'loaded'").fetchall()]
    finally:
        con.close()


# -- part ids in a run detail -----------------------------------------------------------------


def set_part_id(value: object) -> Edit:
    def edit(payload: Any) -> None:
        payload["files"][0]["partId"] = value
    return edit


def repeat_part_id(payload: Any) -> None:
    payload["files"][1]["partId"] = payload["files"][0]["partId"]


BIG = "9" * 5000


@pytest.mark.hostile("a run detail with a part id out of range (-1, 0, 2^63, 5,000 digits) "
                     "or listed twice",
                     "that run fails (job, run, file, value); the others load exactly; exit 3")
@pytest.mark.parametrize(("edit", "problem"), [
    (set_part_id(-1), "file 1: partId -1 is out of range (an integer from 1 to "
                      "9223372036854775807)"),
    (set_part_id(0), "file 1: partId 0 is out of range"),
    (set_part_id(2**63), "file 1: partId 9223372036854775808 is out of range"),
    (set_part_id(BIG), f"file 1: partId '{BIG[:36]}... is out of range"),
    (set_part_id("-0x10"), "file 1: partId '-0x10' is not an integer"),
    (repeat_part_id, "the run detail lists part 1 twice (files 1 and 2)"),
], ids=["negative", "zero", "beyond-bigint", "5000-digits", "hex", "twice"])
def test_hostile_part_id_out_of_range_fails_its_run_only(
        edit: Edit, problem: str, simulator: Tampered, sync: Callable[[], Result],
        tmp_path: Path) -> None:
    job = simulator.job_named("Daily sessions")
    bad = simulator.runs(job.job_id)[-1]
    assert len(simulator.part_bodies(job.job_id, bad.run_id)) >= 2
    simulator.edits[simulator.api_path(f"/exports/{job.job_id}/runs/{bad.run_id}")] = edit

    result = sync()

    output = output_of(result)
    assert result.exit_code == 3, output
    assert "Traceback" not in output and BIG not in output
    runs = json.loads(result.stdout)["runs"]
    failed = [run for run in runs if run["status"] == "failed"]
    assert [(run["jobId"], run["runId"]) for run in failed] == [(job.job_id, bad.run_id)]
    assert failed[0]["message"].startswith(f"job {job.job_id}, run {bad.run_id}, {problem}") \
        or failed[0]["message"] == f"job {job.job_id}, run {bad.run_id}: {problem}", failed
    # Every other run loaded, exactly as the simulator's truth; the bad one, not a row.
    loaded = {run["runId"]: run for run in runs if run["status"] == "loaded"}
    assert loaded and bad.run_id not in loaded
    counts = rows_by_run(tmp_path / "cs.duckdb")
    assert counts == {run_id: len(simulator.truth(run["jobId"], run_id))
                      for run_id, run in loaded.items()}
    assert {run["status"] for run in runs} <= {"loaded", "failed", "source_failed"}


# -- ids in the job list ----------------------------------------------------------------------


@pytest.mark.hostile("a job list with a job id out of range",
                     "the sync fails before loading, in one line naming the job, field and "
                     "value; exit 1")
@pytest.mark.parametrize(("edit", "problem"), [
    (set_job_value("jobId", -3),
     "the job named 'Daily pageviews': jobId -3 is out of range (an integer from 1 to "
     "9223372036854775807)"),
    (set_job_value("jobId", 2**64 - 1),
     "the job named 'Daily pageviews': jobId 18446744073709551615 is out of range"),
], ids=["negative-job", "u64-job"])
def test_hostile_job_list_with_a_job_id_out_of_range_fails_the_listing(
        edit: Callable[[int], Edit], problem: str, simulator: Tampered,
        sync: Callable[[], Result], tmp_path: Path) -> None:
    """Refused whole, not skipped: every job of the project is placed into its table
    (csload.load.placement), and a job that cannot be named cannot be placed."""
    job = simulator.job_named("Daily pageviews")
    simulator.edits[simulator.api_path("/exports")] = edit(job.job_id)

    result = sync()

    output = output_of(result)
    assert result.exit_code == 1, output
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and problem.format(job=job.job_id) in lines[0], lines
    assert loaded_runs(tmp_path / "cs.duckdb") == []


@pytest.mark.hostile("a job of the job list whose segmentId, customVarPosition, fields, "
                     "alias, scope or format cannot be read, or listed twice with other fields",
                     "that job is refused alone, naming the job, key and value; the other "
                     "jobs load exactly; exit 3; the next sync loads it once the list is right")
@pytest.mark.parametrize(("edit", "problem"), [
    (set_job_value("segmentId", -1), "job {job}: segmentId -1 is out of range"),
    (set_position(21), "job {job}: customVarPosition 21 is out of range (an integer from 1 "
                       "to 20)"),
    (set_position("²"), "job {job}: customVarPosition '²' is not an integer"),
    (set_job_value("fields", "all"), "job {job}: fields is str, not a list"),
    (set_job_value("fields", []), "job {job}: the job lists no fields"),
    (set_field_value("aliasName", 5), "job {job}: aliasName 5 is not text"),
    (set_job_value("scope", None), "job {job}: no scope"),
    (set_job_value("format", ["CSV"]), "job {job}: format ['CSV'] is not text"),
    (list_twice(3), "job {job}: the job list gives it twice, with different definitions"),
], ids=["segment", "position-21", "position-superscript", "fields", "no-fields", "alias-5",
        "no-scope", "format-list", "listed-twice"])
def test_hostile_job_that_cannot_be_read_is_refused_alone(
        edit: Callable[[int], Edit], problem: str, simulator: Tampered,
        sync: Callable[[], Result], tmp_path: Path) -> None:
    # One job with a field csload could not read (customVarPosition 21, found by QA on
    # 2026-12-07) failed every sync of the project, for every job (exit 1).
    views = simulator.job_named("Daily pageviews")
    simulator.edits[simulator.api_path("/exports")] = edit(views.job_id)

    result = sync()

    assert result.exit_code == 3, output_of(result)
    report = json.loads(result.stdout)
    [refused] = [job for job in report["jobs"] if job["refused"]]
    assert refused["jobId"] == views.job_id and refused["runsNotLoaded"] > 0
    assert refused["refused"].startswith("Contentsquare's definition of the job cannot be "
                                         f"read ({problem.format(job=views.job_id)}")
    assert any(f"job {views.job_id} (Daily pageviews)" in w and "refused" in w
               for w in report["warnings"])
    # Every other job's runs loaded, exactly; not a row of the refused one.
    loading = {job["jobId"] for job in report["jobs"] if not job["refused"]}
    assert simulator.job_named("Daily sessions").job_id in loading
    truth = {run.run_id: len(simulator.truth(job, run.run_id)) for job in loading
             for run in simulator.runs(job) if simulator.run_state(run.run_id) == "SUCCESS"}
    db = tmp_path / "cs.duckdb"
    assert truth and rows_by_run(db) == truth

    simulator.edits.clear()
    again = sync()

    assert again.exit_code == 0, output_of(again)
    tables = {job["jobId"]: job["table"] for job in json.loads(again.stdout)["jobs"]}
    assert tables[views.job_id] == "views"
    truth.update({run.run_id: len(simulator.truth(views.job_id, run.run_id))
                  for run in simulator.runs(views.job_id)
                  if simulator.run_state(run.run_id) == "SUCCESS"})
    assert rows_by_run(db) == truth


def test_a_creation_time_that_is_no_time_refuses_no_job(
        simulator: Tampered, cli: Callable[..., Result], sync: Callable[[], Result],
        tmp_path: Path) -> None:
    # Found by QA (2026-12-08): `createdAt` 'yesterday' refused the main feed, though no
    # sync uses it; `csload jobs` shows it, and shows none now.
    views = simulator.job_named("Daily pageviews").job_id
    simulator.edits[simulator.api_path("/exports")] = set_job_value("createdAt",
                                                                    "yesterday")(views)

    result = sync()

    assert result.exit_code == 0, output_of(result)
    assert views in {run["jobId"] for run in json.loads(result.stdout)["runs"]}
    listed = {job["jobId"]: job for job in json.loads(cli("jobs", "--json").stdout)}
    assert listed[views]["createdAt"] is None and "unreadable" not in listed[views]


def test_the_job_list_shows_a_job_that_cannot_be_read(
        simulator: Tampered, cli: Callable[..., Result]) -> None:
    views = simulator.job_named("Daily pageviews").job_id
    simulator.edits[simulator.api_path("/exports")] = set_position(21)(views)

    text, as_json = cli("jobs"), cli("jobs", "--json")

    assert text.exit_code == as_json.exit_code == 0, output_of(text) + output_of(as_json)
    listed = {job["jobId"]: job for job in json.loads(as_json.stdout)}
    assert set(listed) == {job.job_id for job in simulator.jobs}
    assert listed[views]["unreadable"] == (f"job {views}: customVarPosition 21 is out of range "
                                           "(an integer from 1 to 20)")
    assert listed[views]["fields"] == [] and listed[views]["name"] == "Daily pageviews"
    assert not any("unreadable" in job for job_id, job in listed.items() if job_id != views)
    assert f"job {views}: its definition cannot be read (job {views}: customVarPosition 21" \
        in " ".join(text.stdout.split())


# -- run ids in a job's run list --------------------------------------------------------------


@pytest.mark.hostile("a run list with a run id out of range",
                     "the sync fails before loading, in one line naming the job and value; "
                     "exit 1")
@pytest.mark.parametrize("value", [-7, 0, "1" + "0" * 19])
def test_hostile_run_list_with_a_run_id_out_of_range_fails_before_loading(
        value: object, simulator: Tampered, sync: Callable[[], Result], tmp_path: Path) -> None:
    job = simulator.job_named("Daily sessions")

    def edit(payload: Any) -> None:
        if payload:   # the first page only: the client reads pages until a short one
            payload[0]["jobRunId"] = value

    simulator.edits[simulator.api_path(f"/exports/{job.job_id}/runs")] = edit

    result = sync()

    output = output_of(result)
    assert result.exit_code == 1, output
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"job {job.job_id}: jobRunId {value!r} is out of range" in lines[0], lines
    assert loaded_runs(tmp_path / "cs.duckdb") == []


# -- custom variable positions ----------------------------------------------------------------


@pytest.mark.hostile("custom variables with a position out of range",
                     "a warning (names not recorded); every run loads; exit 0")
@pytest.mark.parametrize("value", [-2, 21, "1" + "0" * 30])
def test_hostile_custom_var_position_out_of_range_is_a_warning(
        value: object, simulator: Tampered, sync: Callable[[], Result], tmp_path: Path) -> None:
    def edit(payload: Any) -> None:
        payload[0]["position"] = value

    simulator.edits[simulator.api_path("/custom-vars")] = edit

    result = sync()

    output = output_of(result)
    assert result.exit_code == 0, output
    assert "Traceback" not in output
    report = json.loads(result.stdout)
    assert [w for w in report["warnings"] if "custom variables" in w] == [
        "the names of the custom variables were not recorded: custom variables: position "
        f"{value!r} is out of range (an integer from 1 to 20)"]
    runs = report["runs"]
    loaded = {run["runId"]: run for run in runs if run["status"] == "loaded"}
    assert loaded and {run["status"] for run in runs} <= {"loaded", "source_failed"}
    assert rows_by_run(tmp_path / "cs.duckdb") == {
        run_id: len(simulator.truth(run["jobId"], run_id)) for run_id, run in loaded.items()}


# -- a run's window and times -----------------------------------------------------------------


def set_run_values(run_id: int, **values: str) -> Edit:
    """Set the run's keys in a run detail, or in the page of a run list that holds it."""
    def edit(payload: Any) -> None:
        for run in payload if isinstance(payload, list) else [payload]:
            if run["jobRunId"] == run_id:
                run.update(values)
    return edit


@pytest.mark.hostile("a run whose window spans a century, ends before it starts, or whose "
                     "finish time is in year 9999",
                     "that run fails before its download (job, run, what is wrong); every "
                     "loaded row stays; exit 3; the next sync loads the true run")
@pytest.mark.parametrize(("values", "problem"), [
    ({"startDate": "2000-01-01T00:00:00.000Z", "endDate": "2100-01-01T00:00:00.000Z"},
     "its window (2000-01-01 00:00 to 2100-01-01 00:00 UTC) spans 36,525 days, more than a "
     "daily run's 2 days at most; loaded, it would replace the job's other runs over all "
     "those days"),
    ({"startDate": "2026-11-20T00:00:00.000Z", "endDate": "2026-11-22T01:00:00.000Z"},
     "spans 49 hours, more than a daily run's 2 days at most"),
    ({"endDate": "2000-01-01T00:00:00.000Z"}, "ends before it starts"),
    ({"finishedAt": "9999-12-31T00:00:00.000Z"},
     "it was finished at 9999-12-31 00:00 UTC, ahead of this machine's clock"),
], ids=["century", "49-hours", "reversed", "finished-in-9999"])
def test_hostile_run_window_or_time_fails_that_run_and_keeps_the_loaded_rows(
        values: dict[str, str], problem: str, simulator: Tampered,
        sync: Callable[[], Result], tmp_path: Path) -> None:
    # A daily run of 2000-01-01..2100-01-01 replaced every loaded day of its job by the window
    # rule (402 rows removed, exit 0, for good); one finished in year 9999 counted as later
    # than every re-run of its day, whose rows were then discarded.
    first = sync()
    assert first.exit_code == 0, output_of(first)
    before = rows_by_run(tmp_path / "cs.duckdb")
    job = simulator.job_named("Daily pageviews")
    [new] = [run for run in simulator.advance_days(1)
             if any(r.run_id == run for r in simulator.runs(job.job_id))]
    edit = set_run_values(new, **values)
    simulator.edits[simulator.api_path(f"/exports/{job.job_id}/runs")] = edit
    simulator.edits[simulator.api_path(f"/exports/{job.job_id}/runs/{new}")] = edit

    result = sync()

    assert result.exit_code == 3, output_of(result)
    [failed] = [run for run in json.loads(result.stdout)["runs"] if run["status"] == "failed"]
    assert failed["runId"] == new
    assert failed["message"].startswith(f"job {job.job_id}, run {new}: the API's run cannot "
                                        "be an export: ") and problem in failed["message"]
    if "ahead of this machine's clock" in problem:   # most often, the clock is behind
        assert "If this machine's clock is behind, set it right (NTP" in failed["message"]
    after = rows_by_run(tmp_path / "cs.duckdb")
    assert {run: after[run] for run in before} == before
    simulator.edits.clear()
    assert sync().exit_code == 0
    assert rows_by_run(tmp_path / "cs.duckdb")[new] == len(simulator.truth(job.job_id, new))


@pytest.mark.hostile("a run of a job's run list whose time is no time ('yesterday')",
                     "that run fails alone (job, run, key); every other run loads; exit 3; "
                     "the next sync loads it once the list is right")
def test_a_run_list_with_a_time_that_is_no_time_fails_that_run_alone(
        simulator: Tampered, sync: Callable[[], Result], tmp_path: Path) -> None:
    # It was "unexpected timestamp 'yesterday'", naming no job, run or key; then one line
    # naming them, but the whole sync failed (exit 1): no job loaded until the API changed.
    job = simulator.job_named("Daily sessions")
    run_id = simulator.runs(job.job_id)[-1].run_id
    simulator.edits[simulator.api_path(f"/exports/{job.job_id}/runs")] = set_run_values(
        run_id, startDate="yesterday")

    result = sync()

    assert result.exit_code == 3, output_of(result)
    runs = json.loads(result.stdout)["runs"]
    [failed] = [run for run in runs if run["status"] == "failed"]
    assert failed["runId"] == run_id
    assert failed["message"] == (f"job {job.job_id}, run {run_id}: startDate: unexpected "
                                 "timestamp 'yesterday' (in the API's run list)")
    loaded = rows_by_run(tmp_path / "cs.duckdb")
    assert run_id not in loaded
    others = {run.run_id: len(simulator.truth(each.job_id, run.run_id))
              for each in simulator.jobs for run in simulator.runs(each.job_id)
              if run.run_id != run_id and simulator.run_state(run.run_id) == "SUCCESS"}
    assert len(others) > 1 and {run: loaded.get(run) for run in others} == others
    simulator.edits.clear()
    assert sync().exit_code == 0
    assert rows_by_run(tmp_path / "cs.duckdb")[run_id] == len(simulator.truth(job.job_id,
                                                                               run_id))
