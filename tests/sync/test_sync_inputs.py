"""Inputs checked at the door: a bad `since`/`until`/`scope`/`jobs`/target is refused with one
clear line (ConfigError from Python, a usage error, exit 2, from the CLI) before a database is
created or the API is asked anything; a missing database is not opened as a new empty one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import Result

import csload
from csload.config import Settings
from csload.errors import ConfigError, StoreError
from csload.simulator import Simulator
from tests.support.syncref import SESSIONS_JOB, run_of


def assert_untouched(simulator: Simulator, db_path: Path) -> None:
    assert not db_path.exists()
    assert sum(simulator.stats.requests.values()) == 0, dict(simulator.stats.requests)


def assert_usage_error(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_since_and_until_as_iso_strings_select_runs_like_dates(
    settings: Settings, simulator: Simulator, db_path: Path
) -> None:
    report = csload.sync(settings, db=db_path, jobs=[SESSIONS_JOB], since="2026-11-23",
                         until="2026-11-23")

    assert report.exit_code == 0
    assert {r.run_id for r in report.loaded} == {run_of(simulator, SESSIONS_JOB, "2026-11-23")}


@pytest.mark.parametrize("value", ["2026/12/01", "01-12-2026", "2026-13-01", "20261201",
                                   "yesterday", 20261201, datetime(2026, 12, 1)])
def test_a_bad_day_is_refused_before_anything(
    settings: Settings, simulator: Simulator, db_path: Path, value: object
) -> None:
    with pytest.raises(ConfigError, match=r"since must be a day .*YYYY-MM-DD") as raised:
        csload.sync(settings, db=db_path, since=value)
    assert repr(value) in str(raised.value)
    with pytest.raises(ConfigError, match="until must be a day"):
        csload.sync(settings, db=db_path, until=value)
    assert_untouched(simulator, db_path)


def test_since_after_until_is_refused_before_anything(
    settings: Settings, simulator: Simulator, db_path: Path, cli: Callable[..., Result]
) -> None:
    with pytest.raises(ConfigError, match="since 2026-12-05 is after until 2026-12-01"):
        csload.sync(settings, db=db_path, since=date(2026, 12, 5), until="2026-12-01")
    result = cli("sync", "--db", str(db_path), "--since", "2026-12-05", "--until", "2026-12-01")

    assert_usage_error(result, "--since 2026-12-05 is after --until 2026-12-01")
    assert_untouched(simulator, db_path)


def test_a_bad_cli_day_is_a_usage_error(
    simulator: Simulator, db_path: Path, cli: Callable[..., Result]
) -> None:
    assert_usage_error(cli("sync", "--db", str(db_path), "--since", "2026/12/01"), "--since")
    assert_untouched(simulator, db_path)


def test_an_unknown_scope_is_refused_with_a_suggestion(
    settings: Settings, simulator: Simulator, db_path: Path, cli: Callable[..., Result]
) -> None:
    with pytest.raises(ConfigError, match=r"scope must be one of sessions, views, got "
                                          r"'pageviews'; did you mean views\?"):
        csload.sync(settings, db=db_path, scope="pageviews")
    result = cli("sync", "--db", str(db_path), "--scope", "pageviews")

    assert_usage_error(result, "pageviews", "views")
    assert_untouched(simulator, db_path)


@pytest.mark.parametrize("jobs", [[0], [-3], ["1120"], [1.5], [True], 1120, "1120"])
def test_bad_job_ids_are_refused(
    settings: Settings, simulator: Simulator, db_path: Path, jobs: object
) -> None:
    with pytest.raises(ConfigError, match=r"jobs.*positive integer"):
        csload.sync(settings, db=db_path, jobs=jobs)
    assert_untouched(simulator, db_path)


def test_a_tables_mapping_with_job_ids_as_strings_is_honoured(
    settings: Settings, simulator: Simulator, db_path: Path
) -> None:
    """JSON (an orchestrator's variables, a YAML file) gives a mapping's keys as strings: until
    2026-12-07 `tables={"1120": ...}` was ignored without a word, and the job loaded into its
    scope's table."""
    report = csload.sync(settings, db=db_path, jobs=[SESSIONS_JOB],
                         tables={str(SESSIONS_JOB): "all_sessions"})
    assert {r.table for r in report.loaded} == {"all_sessions"}
    mapped = Settings(client_id="c", client_secret="s", tables={f" {SESSIONS_JOB} ": "x"})
    assert mapped.tables == {SESSIONS_JOB: "x"}


@pytest.mark.parametrize("key", ["views", "11.5", True, 1.0, "", 0, "0", -3])
def test_a_tables_key_that_is_no_job_id_is_refused(
    settings: Settings, simulator: Simulator, db_path: Path, key: object
) -> None:
    with pytest.raises(ConfigError, match=r"tables: keys are job ids \(positive integers\), got"):
        csload.sync(settings, db=db_path, tables={key: "mine"})
    assert_untouched(simulator, db_path)
    with pytest.raises(ConfigError, match=r"Settings.tables: keys are job ids"):
        Settings(client_id="c", client_secret="s", tables={key: "mine"})


@pytest.mark.parametrize(("call", "words"), [
    (lambda: csload.sync({"client_id": "x"}), "settings must be a csload.Settings, got dict"),
    (lambda: csload.sync("csload.toml"), "settings must be a csload.Settings, got str"),
    (lambda: csload.jobs(settings={"client_id": "x"}), "settings must be a csload.Settings"),
    (lambda: csload.Settings(client_id="c", client_secret="s", limits={"lock_wait": 2}),
     "Settings.limits must be a csload.Limits, got dict"),
    (lambda: csload.Settings(client_id="c", client_secret="s", retry=3),
     "Settings.retry must be a csload.RetryPolicy, got int"),
    (lambda: csload.status(123), "db must be a path"),
    (lambda: csload.connect(123), "db must be a path"),
    (lambda: csload.status(parquet=4.5), "parquet must be a path"),
])
def test_arguments_of_the_wrong_type_are_said_so(call: Callable[[], object], words: str) -> None:
    """Found by QA, 2026-12-07: these were an AttributeError or a TypeError from deep inside,
    not a CsloadError saying what to pass."""
    with pytest.raises(ConfigError, match=words):
        call()


def test_status_of_an_in_memory_database_or_a_folder_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"in-memory database .* holds no csload ledger"):
        csload.status(":memory:")
    with pytest.raises(StoreError, match=r"is a folder, not a database file .*--parquet"):
        csload.status(tmp_path)


def test_the_settings_lake_section_does_not_stop_a_local_lake(
    simulator: Simulator, cli: Callable[..., Result], tmp_path: Path
) -> None:
    """csload.toml's [lake] is the S3 lake's: a local lake synced or read with the same file
    was refused ("storage options apply to s3:// lakes only"; found 2026-12-07)."""
    config = tmp_path / "csload.toml"
    config.write_text('[lake]\nendpoint_url = "https://minio.example.com"\nregion = "eu-1"\n')
    config.chmod(0o600)
    synced = cli("sync", "--parquet", "lake", "--job", str(SESSIONS_JOB))
    assert synced.exit_code == 0, synced.output
    shown = cli("status", "--parquet", "lake", "--json")
    assert shown.exit_code == 0, shown.output
    assert "sessions" in shown.stdout


@pytest.mark.parametrize("job", ["0", "-3"])
def test_bad_cli_job_ids_are_usage_errors(
    simulator: Simulator, db_path: Path, cli: Callable[..., Result], job: str
) -> None:
    result = cli("sync", "--db", str(db_path), "--job", job)

    assert_usage_error(result, f"--job: a job id is a positive integer, got {job}")
    assert_untouched(simulator, db_path)


@pytest.mark.parametrize("command", [["sync"], ["status"], ["doctor"],
                                     ["backfill", "--gaps"]])
def test_db_and_parquet_together_is_a_usage_error(
    simulator: Simulator, db_path: Path, tmp_path: Path, cli: Callable[..., Result],
    command: list[str]
) -> None:
    lake = tmp_path / "lake"
    result = cli(*command, "--db", str(db_path), "--parquet", str(lake))

    assert_usage_error(result, "--db", "--parquet", "not both")
    assert not lake.exists()
    assert_untouched(simulator, db_path)


def test_connect_refuses_a_missing_database(db_path: Path) -> None:
    with pytest.raises(StoreError, match=rf"{db_path.name}: the file does not exist"):
        csload.connect(db_path)
    with pytest.raises(StoreError, match="does not exist"):
        csload.connect(db_path, read_only=True)
    assert not db_path.exists()


def test_connect_creates_a_database_when_asked(db_path: Path) -> None:
    con = csload.connect(db_path, create=True)
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.close()

    con = csload.connect(db_path, read_only=True)
    try:
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        con.close()


def test_connect_to_an_in_memory_database_needs_no_create(tmp_path: Path) -> None:
    con = csload.connect(":memory:")
    try:
        assert con.execute("SELECT 42").fetchall() == [(42,)]
    finally:
        con.close()
    assert not (tmp_path / ":memory:").exists() and not Path(":memory:").exists()
