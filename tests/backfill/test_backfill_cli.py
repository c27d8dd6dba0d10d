"""The CLI over real HTTP: `jobs create`, `backfill`, `custom-vars`, `dynamic-vars`.

The CLI reads the real clock, so these tests use `live_sim`: a simulator on real time whose
once runs take 3 x 0.02 s; the backfill polls every 0.01 s. Dates are relative to today.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from csload.cli import main
from csload.simulator import ServerHandle, Simulator
from csload.simulator.variables import custom_var_definitions, dynamic_var_keys
from tests.support.bfref import VIEWS_ELSEWHERE, backfill_jobs, days, lake_query, query

Live = tuple[Simulator, ServerHandle]
FIELDS = ["--field", "session_id", "--field", "view_number", "--field", "view_time",
          "--field", "url:page_url", "--field", "custom_var:2:ab"]


@pytest.fixture
def cli(live_sim: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., Result]:
    sim, handle = live_sim
    env = dict(line.split("=", 1) for line in sim.config.env_lines(handle.base_url))
    monkeypatch.chdir(tmp_path)
    # As tests/backfill/conftest.py's settings: the daily views job away from `views`, which
    # these backfills of other fields take.
    (tmp_path / "csload.toml").write_text("[tables]\n" + "".join(
        f'{job} = "{table}"\n' for job, table in VIEWS_ELSEWHERE.items()))
    for name in list(os.environ):
        if name.startswith("CONTENTSQUARE_"):
            monkeypatch.delenv(name)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


def today() -> date:
    return datetime.now(UTC).date()


# -- jobs create ------------------------------------------------------------------------------


def test_jobs_create_daily_with_aliases_and_variables(cli: Callable[..., Result],
                                                      live_sim: Live) -> None:
    sim, _ = live_sim
    result = cli("jobs", "create", "--name", "Mobile views", "--scope", "views", "--format",
                 "csv", "--daily", *FIELDS, "--field", "dynamic_var:utm_source",
                 "--device", "mobile", "--segment", "7", "--json")
    assert result.exit_code == 0, result.output
    created = orjson.loads(result.stdout)
    record = sim.job(created["jobId"])
    assert (record.name, record.scope, record.format, record.frequency) == (
        "Mobile views", "views", "CSV", "daily")
    assert (record.device_label, record.segment_id) == ("mobile", 7)
    assert [f.to_api() for f in record.fields] == [
        {"fieldName": "session_id"}, {"fieldName": "view_number"}, {"fieldName": "view_time"},
        {"fieldName": "url", "aliasName": "page_url"},
        {"fieldName": "custom_var", "aliasName": "ab", "customVarPosition": 2},
        {"fieldName": "dynamic_var", "dynamicVarKey": "utm_source"}]


def test_jobs_create_once_takes_both_days_included(cli: Callable[..., Result],
                                                   live_sim: Live) -> None:
    sim, _ = live_sim
    first, last = today() - timedelta(days=8), today() - timedelta(days=2)  # 7 days
    result = cli("jobs", "create", "--name", "Last week", "--scope", "views",
                 "--once", str(first), str(last), *FIELDS)
    assert result.exit_code == 0, result.output
    assert "created job" in result.stdout
    (job,) = [j for j in sim.jobs if j.name == "Last week"]
    assert job.date_from == datetime(first.year, first.month, first.day, tzinfo=UTC)
    assert job.date_to is not None and job.date_to - job.date_from == timedelta(days=7)


def test_jobs_create_like_copies_fields_and_filters(cli: Callable[..., Result],
                                                    live_sim: Live) -> None:
    sim, _ = live_sim
    source = sim.job_named("Daily pageviews")
    result = cli("jobs", "create", "--name", "Copy", "--like", str(source.job_id), "--daily",
                 "--json")
    assert result.exit_code == 0, result.output
    copy = sim.job(orjson.loads(result.stdout)["jobId"])
    assert copy.fields == source.fields
    assert (copy.scope, copy.format, copy.device_label) == (
        source.scope, source.format, source.device_label)


def test_jobs_create_like_with_fields_adds_them(cli: Callable[..., Result],
                                                live_sim: Live) -> None:
    """`--like` and `--field` together: the job's fields, then the new ones (they used to be
    refused, so adding one field meant typing every field again)."""
    sim, _ = live_sim
    source = sim.job_named("Daily pageviews")
    result = cli("jobs", "create", "--name", "Wider", "--like", str(source.job_id), "--daily",
                 "--field", "custom_var:2:ab", "--json")
    assert result.exit_code == 0, result.output
    copy = sim.job(orjson.loads(result.stdout)["jobId"])
    assert copy.fields[:-1] == source.fields
    assert (copy.fields[-1].field_name, copy.fields[-1].custom_var_position,
            copy.fields[-1].alias_name) == ("custom_var", 2, "ab")
    # A field the job has already is the duplicate rule's, checked before any request.
    again = cli("jobs", "create", "--name", "Twice", "--like", str(source.job_id), "--daily",
                "--field", source.fields[0].field_name)
    assert again.exit_code == 1, again.output
    assert "rule: a fieldName appears once" in again.stderr
    assert sim.stats.requests["create_job"] == 1


@pytest.mark.parametrize(("args", "rule"), [
    (["--format", "parquet", "--daily"], "rule: format is CSV or JSONL"),
    (["--scope", "events", "--daily"], "rule: scope is sessions or views"),
    (["--device", "watch", "--daily"], "rule: deviceLabel is all, desktop, mobile or tablet"),
    ([], "rule: frequency is daily, hourly or once"),
    (["--name", "", "--daily"], "rule: the job name must not be empty"),
    (["--once", "{d8}", "{d1}"], "rule: a once job covers at most 7 days"),
    (["--once", "{d1}", "{d8}"], "rule: the date range's to must be after its from"),
    (["--once", "{old}", "{old}"], "rule: from must not be older than the data retention"),
    (["--daily", "--field", "view_nmber"], "rule: every fieldName is an exportable field"),
    (["--daily", "--field", "url"], "rule: a fieldName appears once"),
    (["--daily", "--field", "custom_var:21"], "rule: customVarPosition is between 1 and 20"),
    (["--daily", "--field", "custom_var:x"], "rule: customVarPosition is between 1 and 20"),
    (["--daily", "--field", "path:page_url"], "rule: two fields cannot have the same column"),
])
def test_jobs_create_refuses_locally_naming_the_rule(
        cli: Callable[..., Result], live_sim: Live, args: list[str], rule: str) -> None:
    sim, _ = live_sim
    dates = {"{d8}": str(today() - timedelta(days=9)), "{d1}": str(today() - timedelta(days=2)),
             "{old}": str(today() - timedelta(days=420))}
    args = [dates.get(a, a) for a in args]
    base = ["--name", "Rules", "--scope", "views", *FIELDS]
    result = cli("jobs", "create", *base, *args)
    assert result.exit_code == 1, result.output
    assert rule in result.stderr
    assert "invalid job" in result.stderr
    assert sim.stats.requests["create_job"] == 0


def test_jobs_create_shows_the_apis_own_refusal(cli: Callable[..., Result],
                                               live_sim: Live) -> None:
    sim, _ = live_sim
    sim.config.data_retention_months = 1
    old = today() - timedelta(days=60)
    result = cli("jobs", "create", "--name", "Old", "--scope", "views", "--once", str(old),
                 str(old + timedelta(days=1)), *FIELDS)
    assert result.exit_code == 1
    assert "the API refused job 'Old' although csload's own checks passed" in result.stderr
    assert "retention" in result.stderr
    assert sim.stats.requests["create_job"] == 1


def test_jobs_create_dry_run_sends_nothing(cli: Callable[..., Result], live_sim: Live) -> None:
    sim, _ = live_sim
    result = cli("jobs", "create", "--name", "Dry", "--scope", "views", "--daily", *FIELDS,
                 "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["name"] == "Dry"
    assert sim.stats.requests["create_job"] == 0


# -- backfill ---------------------------------------------------------------------------------


def test_backfill_end_to_end_then_resumed(cli: Callable[..., Result], live_sim: Live,
                                          tmp_path: Path) -> None:
    sim, _ = live_sim
    first, last = today() - timedelta(days=11), today() - timedelta(days=3)  # 9 days
    db = tmp_path / "cs.duckdb"
    args = ["backfill", "--scope", "views", "--from", str(first), "--to", str(last), *FIELDS,
            "--db", str(db), "--poll-interval", "0.01"]

    plan = cli(*args, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert [i["status"] for i in orjson.loads(plan.stdout)["items"]] == ["planned"] * 2
    assert sim.stats.requests["create_job"] == 0 and not db.exists()

    result = cli(*args)
    assert result.exit_code == 0, result.output
    # Not a terminal: plain progress lines on stderr, the summary table on stdout.
    assert "job created" in result.stderr and "SUCCESS" in result.stderr
    # Exactly "loaded" (not "already loaded" / "already_loaded"): a progress line per window
    # with its rows, and the status of both windows in the summary table.
    assert len(re.findall(r": loaded [\d,]+ rows", result.stderr)) == 2, result.stderr
    assert len(re.findall(r"(?<!\w)loaded(?!\w)", result.stdout)) == 2, result.stdout
    assert len(backfill_jobs(sim)) == 2
    assert {r[0] for r in query(db, "SELECT DISTINCT _date FROM views")} == set(
        days(first, last))

    again = cli(*args, "--json")
    assert again.exit_code == 0, again.output
    report = orjson.loads(again.stdout)
    assert [i["status"] for i in report["items"]] == ["already_loaded"] * 2
    assert report["jobsCreated"] == []
    assert sim.stats.requests["create_job"] == 2


def test_a_sync_after_a_backfill_counts_its_once_jobs_instead_of_listing_them(
        cli: Callable[..., Result], live_sim: Live, tmp_path: Path) -> None:
    sim, _ = live_sim
    db = tmp_path / "cs.duckdb"
    first, last = today() - timedelta(days=11), today() - timedelta(days=3)  # 2 once jobs
    daily = [job.job_id for job in sim.jobs if job.frequency != "once"]
    views = next(job.job_id for job in sim.jobs if job.scope == "views" and job.job_id in daily)
    assert cli("sync", "--db", str(db)).exit_code == 0
    done = cli("backfill", "--like", str(views), "--from", str(first), "--to", str(last),
               "--db", str(db), "--poll-interval", "0.01")
    assert done.exit_code == 0, done.output
    once = [job.job_id for job in backfill_jobs(sim)]
    assert len(once) == 2 and daily

    text = cli("sync", "--db", str(db))
    assert text.exit_code == 0, text.output
    listed = {int(m) for m in re.findall(r"^│ (\d+) +│", text.stdout, re.MULTILINE)}
    # The recurring jobs are listed; the finished once jobs, loaded before, only counted.
    assert listed == set(daily), text.stdout
    assert "and 2 once jobs loaded before, with nothing new (`csload jobs` lists every job)" \
        in " ".join(text.stdout.split()), text.stdout
    # The JSON report still has every job.
    report = orjson.loads(cli("sync", "--db", str(db), "--json").stdout)
    assert {j["jobId"] for j in report["jobs"]} == set(daily) | set(once)
    # A sync of those once jobs alone lists none of them, and still says they were selected.
    alone = cli("sync", "--db", str(db), *(x for job in once for x in ("--job", str(job))))
    assert alone.exit_code == 0, alone.output
    assert not re.findall(r"^│ (\d+) +│", alone.stdout, re.MULTILINE), alone.stdout
    assert "jobs: 2 once jobs loaded before, with nothing new (`csload jobs` lists every job)" \
        in " ".join(alone.stdout.split()), alone.stdout


def test_backfill_into_a_lake_end_to_end_then_resumed(cli: Callable[..., Result],
                                                      live_sim: Live, tmp_path: Path) -> None:
    sim, _ = live_sim
    first, last = today() - timedelta(days=11), today() - timedelta(days=3)  # 9 days
    root = tmp_path / "lake"
    args = ["backfill", "--scope", "views", "--from", str(first), "--to", str(last), *FIELDS,
            "--parquet", str(root), "--poll-interval", "0.01"]

    plan = cli(*args, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert [i["status"] for i in orjson.loads(plan.stdout)["items"]] == ["planned"] * 2
    assert sim.stats.requests["create_job"] == 0 and not root.exists()

    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["target"] == str(root)
    assert [i["status"] for i in report["items"]] == ["loaded"] * 2
    assert len(backfill_jobs(sim)) == 2
    assert {r[0] for r in lake_query(root, "SELECT DISTINCT _date FROM views")} == set(
        days(first, last))
    status = cli("status", "--parquet", str(root), "--json")
    assert status.exit_code == 0, status.output
    assert sorted(j["jobId"] for j in orjson.loads(status.stdout)["jobs"]) == sorted(
        j.job_id for j in backfill_jobs(sim))

    again = cli(*args, "--json")
    assert again.exit_code == 0, again.output
    assert [i["status"] for i in orjson.loads(again.stdout)["items"]] == [
        "already_loaded"] * 2
    assert sim.stats.requests["create_job"] == 2


def test_backfill_exit_code_3_when_a_window_fails(cli: Callable[..., Result], live_sim: Live,
                                                  tmp_path: Path) -> None:
    sim, _ = live_sim
    # The API's retention is 1 month, shorter than csload assumes: it refuses the first window.
    sim.config.data_retention_months = 1
    # One month back is 28 to 31 days: the first window (33..27 days ago) always starts
    # before it, the second (26..24 days ago) never does.
    first = today() - timedelta(days=33)
    last = first + timedelta(days=9)
    result = cli("backfill", "--scope", "views", "--from", str(first), "--to", str(last),
                 *FIELDS, "--db", str(tmp_path / "cs.duckdb"), "--poll-interval", "0.01",
                 "--json")
    assert result.exit_code == 3, result.output
    report = orjson.loads(result.stdout)
    assert [i["status"] for i in report["items"]] == ["failed", "loaded"]
    assert "retention" in report["items"][0]["message"]
    assert report["exitCode"] == 3


def test_backfill_usage_errors(cli: Callable[..., Result]) -> None:
    assert cli("backfill", "--scope", "views", "--field", "url").exit_code == 2
    both = cli("backfill", "--from", "2026-01-01", "--to", "2026-01-02", "--like", "1",
               "--field", "url")
    assert both.exit_code == 2 and "not both" in both.output
    assert cli("backfill", "--gaps", "--like", "1").exit_code == 2
    targets = cli("backfill", "--gaps", "--db", "x.duckdb", "--parquet", "lake")
    assert targets.exit_code == 2 and "not both" in targets.output


# -- variables ----------------------------------------------------------------------------------


def test_custom_vars(cli: Callable[..., Result]) -> None:
    result = cli("custom-vars", "--json")
    assert result.exit_code == 0, result.output
    assert [(v["position"], v["name"]) for v in orjson.loads(result.stdout)] == \
        custom_var_definitions()
    table = cli("custom-vars")
    assert table.exit_code == 0 and custom_var_definitions()[0][1] in table.stdout


def test_dynamic_vars_days_included(cli: Callable[..., Result]) -> None:
    # A Friday and a Saturday: the Saturday has a key the Friday does not.
    first, last = date(2026, 11, 6), date(2026, 11, 7)
    assert dynamic_var_keys(first, last) != dynamic_var_keys(first, first)
    result = cli("dynamic-vars", "--from", str(first), "--to", str(last), "--json")
    assert result.exit_code == 0, result.output
    assert [(k["key"], k["type"]) for k in orjson.loads(result.stdout)] == \
        dynamic_var_keys(first, last)
    reversed_days = cli("dynamic-vars", "--from", str(last), "--to", str(first))
    assert reversed_days.exit_code == 2


def test_backfill_max_wait_fails_the_window_whose_run_does_not_finish(
        cli: Callable[..., Result], live_sim: Live, tmp_path: Path) -> None:
    sim, _ = live_sim
    sim.config.once_state_seconds = 3600.0   # the run would take 3 h
    day = today() - timedelta(days=3)
    result = cli("backfill", "--scope", "views", "--from", str(day), "--to", str(day),
                 *FIELDS, "--db", str(tmp_path / "cs.duckdb"), "--poll-interval", "0.05",
                 "--max-wait", "0.3", "--json")
    assert result.exit_code == 3, result.output
    (item,) = orjson.loads(result.stdout)["items"]
    assert item["status"] == "failed" and "max_wait" in item["message"], item
    assert len(backfill_jobs(sim)) == 1
    # status says so: a sync never loads a backfill's job, and status said nothing of it.
    [job] = backfill_jobs(sim)
    shown = cli("status", "--db", str(tmp_path / "cs.duckdb"))
    assert shown.exit_code == 0, shown.output
    assert (f"unfinished: backfill job {job.job_id} ({job.name}): days {day} not loaded yet "
            "(its run had not finished when the backfill last looked); unless that backfill "
            "is still running, run the same `csload backfill` again to finish it"
            ) in shown.output, shown.output
    as_json = orjson.loads(cli("status", "--db", str(tmp_path / "cs.duckdb"), "--json").stdout)
    assert [b["jobId"] for b in as_json["unfinishedBackfills"]] == [job.job_id]

    refused = cli("backfill", "--scope", "views", "--from", str(day), "--to", str(day),
                  *FIELDS, "--max-wait", "soon")
    assert refused.exit_code == 2
    assert "Invalid value for '--max-wait': expected a duration" in refused.output
