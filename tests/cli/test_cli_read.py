"""The read commands over real HTTP against the simulator: jobs, jobs show, runs, fields.

Every test runs twice: against the contract, and against the ClickHouse dialect (contract
section 9) with pages clamped to 2 items, so that every list spans pages that are full but
shorter than the limit csload asks for, runs come oldest first unless ordered, and the catalog
has coarse type names.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from csload.api.models import Job, normalize_identifier
from csload.cli import main
from csload.simulator import SimConfig, Simulator
from csload.simulator.config import DIALECTS, dialect_variants


@pytest.fixture(params=DIALECTS)
def sim_config(sim_config: SimConfig, request: pytest.FixtureRequest) -> SimConfig:
    variants = dialect_variants(request.param)
    if request.param == "clickhouse":
        variants.page_size = 2
    return dataclasses.replace(sim_config, variants=variants)


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_jobs_json_lists_the_simulators_jobs(env: dict[str, str], simulator: Simulator) -> None:
    result = invoke(["jobs", "--json"], env)
    assert result.exit_code == 0, result.output
    listed = orjson.loads(result.stdout)
    assert [job["jobId"] for job in listed] == sorted(job.job_id for job in simulator.jobs)
    by_id = {job["jobId"]: job for job in listed}
    for record in simulator.jobs:
        assert by_id[record.job_id]["scope"] == record.scope
        assert by_id[record.job_id]["format"] == record.format
        assert len(by_id[record.job_id]["fields"]) == len(record.fields)


def test_jobs_filters(env: dict[str, str], simulator: Simulator) -> None:
    result = invoke(["jobs", "--json", "--scope", "views"], env)
    assert result.exit_code == 0, result.output
    listed = orjson.loads(result.stdout)
    assert listed
    assert {job["scope"] for job in listed} == {"views"}


def test_jobs_table_output(env: dict[str, str], simulator: Simulator) -> None:
    result = invoke(["jobs"], env)
    assert result.exit_code == 0, result.output
    for record in simulator.jobs:
        assert str(record.job_id) in result.stdout


def test_jobs_show(env: dict[str, str], simulator: Simulator) -> None:
    views_job = next(job for job in simulator.jobs if job.scope == "views")
    result = invoke(["jobs", "show", str(views_job.job_id), "--json"], env)
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.stdout)
    assert shown["jobId"] == views_job.job_id
    assert shown["frequency"] == "daily"
    aliases = {f.get("aliasName") for f in shown["fields"]} - {None}
    assert aliases, "the seeded views job has aliases"
    # The column each field becomes, in the JSON as in the text.
    assert [f.get("column") for f in shown["fields"]] == [
        normalize_identifier(f.column_name) for f in Job.from_api(shown).fields]
    text = invoke(["jobs", "show", str(views_job.job_id)], env)
    assert text.exit_code == 0, text.output
    for alias in aliases:
        assert alias in text.stdout


def test_runs_with_files(env: dict[str, str], simulator: Simulator) -> None:
    job = next(job for job in simulator.jobs if job.scope == "views")
    result = invoke(["runs", str(job.job_id), "--files", "--json"], env)
    assert result.exit_code == 0, result.output
    runs = orjson.loads(result.stdout)
    expected = {run.run_id for run in simulator.runs(job.job_id)}
    assert {run["jobRunId"] for run in runs} == expected
    starts = [run["startDate"] for run in runs]
    assert starts == sorted(starts, reverse=True), "newest first"
    for run in runs:
        if run["state"] == "SUCCESS":
            assert run["files"], "a successful run lists its files"
            assert all("url" not in part for part in run["files"]), "no signed URL printed"
    assert "Signature" not in result.stdout


def test_runs_files_say_which_runs_storage_no_longer_keeps(env: dict[str, str]) -> None:
    # The count alone read as downloadable files for runs whose files expired days before.
    simulator = Simulator(SimConfig(days=10, real_time_clock=True))
    handle = simulator.start_in_thread()
    try:
        result = invoke(["runs", "1121", "--files"],
                        {**env, "CONTENTSQUARE_AUTH_URL": handle.base_url, "COLUMNS": "200"})
    finally:
        handle.stop()
    assert result.exit_code == 0, result.output
    cells = {int(line.split("│")[1]): (line.split("│")[2].strip(), line.split("│")[6].strip())
             for line in result.stdout.splitlines() if line.startswith("│ 1")}
    rows = {run_id: files for run_id, (_state, files) in cells.items()}
    now = datetime.now(UTC)
    for run in simulator.runs(1121):
        # The newest run is still running from 04:00 to about 04:21 UTC each day (the
        # simulator's clock is real time): it has no files yet, and this test failed then.
        if cells[run.run_id][0] != "SUCCESS":
            assert rows[run.run_id] == "", cells
            continue
        until = run.finished_at + timedelta(days=7)
        if until <= now - timedelta(minutes=1):
            assert f"(expired {until:%Y-%m-%d})" in rows[run.run_id], rows
        elif until > now + timedelta(minutes=1):
            assert rows[run.run_id].isdigit(), rows
    assert any("expired" in cell for cell in rows.values())
    assert any(cell.isdigit() for cell in rows.values())


def test_fields(env: dict[str, str]) -> None:
    result = invoke(["fields", "--scope", "sessions", "--json"], env)
    assert result.exit_code == 0, result.output
    names = {field["name"] for field in orjson.loads(result.stdout)}
    assert {"session_id", "user_id", "app_events.event_time"} <= names
    text = invoke(["fields", "--scope", "views"], env)
    assert text.exit_code == 0
    assert "view_number" in text.stdout


def test_flags_win_over_environment(env: dict[str, str]) -> None:
    result = invoke(["jobs", "--client-secret", "wrong-secret"], env)
    assert result.exit_code == 1
    assert "credentials rejected" in result.stderr.lower()
    assert "wrong-secret" not in result.output
    assert "Traceback" not in result.output


def test_settings_from_csload_toml(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "csload.toml").write_text(
        f'client_id = "{env["CONTENTSQUARE_CLIENT_ID"]}"\n'
        f'client_secret = "{env["CONTENTSQUARE_CLIENT_SECRET"]}"\n'
        f'auth_url = "{env["CONTENTSQUARE_AUTH_URL"]}"\n'
        f'project_id = {env["CONTENTSQUARE_PROJECT_ID"]}\n')
    result = invoke(["jobs", "--json"], {})
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)


@pytest.mark.parametrize("missing", ["CONTENTSQUARE_CLIENT_ID", "CONTENTSQUARE_CLIENT_SECRET"])
def test_missing_setting_is_a_one_line_error(env: dict[str, str], missing: str) -> None:
    partial = {k: v for k, v in env.items() if k != missing}
    result = CliRunner().invoke(main, ["jobs"], env={**partial, missing: ""})
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert missing in lines[0]
    assert "missing setting" in lines[0]


def test_plain_http_off_loopback_is_refused(env: dict[str, str]) -> None:
    result = invoke(["jobs", "--auth-url", "http://api.example.com"], env)
    assert result.exit_code == 1
    assert "https" in result.stderr


def test_unknown_job_is_a_clean_error(env: dict[str, str]) -> None:
    result = invoke(["jobs", "show", "999999"], env)
    assert result.exit_code == 1
    assert "404" in result.stderr
    assert "Traceback" not in result.output


def test_text_csload_does_not_control_prints_as_it_is(env: dict[str, str],
                                                       simulator: Simulator) -> None:
    # Job names and error messages quoting user input are not rich markup: `[daily]` was
    # swallowed as a tag and `[/]` crashed the command.
    job = next(job for job in simulator.jobs if job.scope == "views")
    job.name = "[daily] v [/]"
    listed = invoke(["jobs"], {**env, "COLUMNS": "200"})   # the table's name cell on one line
    assert listed.exit_code == 0, listed.output
    assert "[daily] v [/]" in listed.stdout
    shown = invoke(["jobs", "show", str(job.job_id)], env)
    assert shown.exit_code == 0, shown.output
    assert f"Job {job.job_id}: [daily] v [/]" in shown.stdout
    refused = invoke(["sync", "--table", f"{job.job_id}=[bold]a[/]"], env)
    assert refused.exit_code == 2   # a usage error, said before anything is opened
    assert "invalid table name '[bold]a[/]'" in refused.stderr


def test_sync_says_which_daily_jobs_contentsquare_suspended(env: dict[str, str],
                                                            simulator: Simulator) -> None:
    # A suspended job's table stops at its last run, with no gap for `csload status` to show:
    # the sync's jobs table and its JSON say the job's state.
    first = invoke(["sync", "--db", "cs.duckdb", "--json"], env)
    assert first.exit_code == 0, first.output
    states = {job["jobId"]: job["state"] for job in orjson.loads(first.stdout)["jobs"]}
    assert states == {1119: "SUSPENDED", 1120: "ACTIVE", 1121: "ACTIVE"}

    simulator.suspend(1121)
    simulator.advance_days(1)
    result = invoke(["-v", "sync", "--db", "cs.duckdb"], {**env, "COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines()
            if line.startswith("│ 11")}
    assert "job SUSPENDED" in rows["1119"] and "job SUSPENDED" in rows["1121"]
    assert "SUSPENDED" not in rows["1120"]
    assert ("job 1121 (Daily pageviews) is SUSPENDED at Contentsquare: table views gets no new "
            "runs of it until the job is resumed in the Contentsquare console") in result.stderr
