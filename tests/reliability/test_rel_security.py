"""Security: the token stays with the API, secrets stay out of every text, names cannot inject
SQL or reach outside the target, and plain http is refused off this machine.

The scans of logs, reports, exceptions and storage requests run in every test of this suite
(relkit.Secrets); this module adds the cases that need their own setup.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.config import Limits, Settings
from csload.errors import ConfigError, InsecureUrlError
from csload.simulator import ServerHandle, Simulator
from csload.simulator.formats import csv_quote
from tests.support.relkit import (
    Secrets,
    compare,
    csv_field,
    csv_records,
    exception_texts,
    log_texts,
)
from tests.support.syncref import (
    LEGACY_JOB,
    VIEWS_JOB,
    column_name,
    create_job,
    day,
    finish_once_job,
    run_of,
    successful_runs,
    table_names,
)

INJECTION = 'x"; DROP TABLE views; --'
TRAVERSAL = "../../etc"
OFF_MACHINE = "http://203.0.113.7:9000"   # TEST-NET-3: never routed


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def test_the_token_never_reaches_storage_even_when_storage_refuses_it(
    simulator: Simulator, settings: Settings, secrets: Secrets, db_path: Path,
    record: Callable[..., None],
) -> None:
    # Storage answers 400 to any request with an Authorization header, as S3 does.
    simulator.variants.storage_rejects_authorization = True

    report = csload.sync(settings, db=db_path)

    acc = compare(db_path, simulator, successful_runs(simulator))
    checked = secrets.check_storage(simulator)
    record("security", "API token never sent to storage", storage_requests_checked=checked,
           tokens=len(secrets.tokens), **acc.fields())
    assert report.exit_code == 0
    acc.assert_exact()
    assert checked == simulator.stats.storage_requests > 0


def test_aliases_and_job_names_that_try_sql_injection_are_only_names(
    simulator: Simulator, settings: Settings, secrets: Secrets, db_path: Path,
    caplog: pytest.LogCaptureFixture, record: Callable[..., None],
) -> None:
    caplog.set_level(logging.DEBUG)
    before = csload.sync(settings, db=db_path)
    assert before.exit_code == 0
    job = create_job(settings, name="'); DROP TABLE _csload.runs; --", fmt="CSV", scope="views",
                     fields=["session_id", "view_number", "view_time", ("url", INJECTION),
                             ("view_duration_msec", "x'); DELETE FROM sessions; --")],
                     date_from=day("2026-11-23"), date_to=day("2026-11-24"))
    finish_once_job(simulator, job)

    report = csload.sync(settings, db=db_path)

    everything = successful_runs(simulator)
    acc = compare(db_path, simulator, everything)
    record("security", "SQL injection in aliases and a job name", aliases=[INJECTION],
           columns=[column_name(INJECTION)], **acc.fields())
    assert report.exit_code == 0, [r.message for r in report.failed]
    # Every table and every row is still there, the once job's rows included, under the
    # SQL-friendly names of the aliases.
    acc.assert_exact()
    # Its fields differ from the daily views job's: a table of its own, named by its id.
    assert table_names(db_path) == {"sessions", "views", f"sessions_job_{LEGACY_JOB}",
                                    f"views_job_{job}"}
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        names = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ?",
            [f"views_job_{job}"]).fetchall()}
        stored = con.execute("SELECT name FROM _csload.jobs WHERE job_id = ?", [job]).fetchone()
    finally:
        con.close()
    assert column_name(INJECTION) in names
    assert stored == ("'); DROP TABLE _csload.runs; --",)
    secrets.scan(log_texts(caplog), "a log line")


def test_an_alias_that_tries_path_traversal_is_refused_and_nothing_is_written_outside(
    simulator: Simulator, settings: Settings, secrets: Secrets, tmp_path: Path,
    record: Callable[..., None],
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    db = target / "cs.duckdb"
    outside = files_under(tmp_path.parent)
    job = create_job(settings, name="traversal", fmt="JSONL", scope="sessions",
                     fields=["session_id", ("session_date", TRAVERSAL)],
                     date_from=day("2026-11-23"), date_to=day("2026-11-24"))
    run = finish_once_job(simulator, job)

    report = csload.sync(settings, db=db)

    # Refused before its run is downloaded (csload.load.placement: its column would be
    # '_etc', a name csload keeps); the other jobs load.
    [refused] = report.refused
    message = refused.refused or ""
    others = [r for r in successful_runs(simulator) if r != run]
    acc = compare(db, simulator, others)
    record("security", "path traversal in an alias", alias=TRAVERSAL, message=message,
           **acc.fields())
    assert refused.job.job_id == job and run not in {r.run_id for r in report.runs}
    assert f"column {TRAVERSAL!r} (named '_etc') starts with '_'" in message, message
    acc.assert_exact()
    # Only the database (and DuckDB's WAL) in the target; nothing new anywhere else.
    assert {p.name for p in target.iterdir()} <= {"cs.duckdb", "cs.duckdb.wal"}
    assert files_under(tmp_path.parent) - outside <= files_under(target) | {target}


@pytest.mark.parametrize("table", [INJECTION, TRAVERSAL, "views; DROP TABLE sessions",
                                   "_csload_runs", "Sessions", ""])
def test_table_names_that_inject_or_traverse_are_refused_before_anything_runs(
    table: str, simulator: Simulator, settings: Settings, secrets: Secrets, tmp_path: Path,
    child_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, record: Callable[..., None],
) -> None:
    db = tmp_path / "cs.duckdb"

    with pytest.raises(ConfigError) as raised:
        csload.sync(settings, db=db, tables={VIEWS_JOB: table})
    from_settings = pytest.raises(ConfigError)
    with from_settings:
        csload.sync(replace(settings, tables={VIEWS_JOB: table}), db=db)
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in child_env.items() if k.startswith("CONTENTSQUARE_")}
    result = CliRunner().invoke(main, ["sync", "--db", str(db), "--table",
                                       f"{VIEWS_JOB}={table}"], env=env)

    record("security", f"table name {table!r}", refused=str(raised.value))
    assert "invalid table name" in str(raised.value)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    # Refused before the database was created or anything was asked of the API or storage.
    assert not db.exists() and simulator.stats.storage_requests == 0
    assert simulator.stats.requests["list_jobs"] == 0
    secrets.scan(exception_texts(raised.value), "the exception")


def test_file_columns_that_try_sql_injection_load_as_text(
    simulator: Simulator, settings: Settings, secrets: Secrets, db_path: Path,
    record: Callable[..., None],
) -> None:
    """A CSV header column the job does not list, named like an injection attempt."""
    views_run = run_of(simulator, VIEWS_JOB, "2026-11-23")
    text = gzip.decompress(simulator.part_bodies(VIEWS_JOB, views_run, compressed=True)[0])
    records = csv_records(text.decode())
    body = ",".join([*(csv_quote(h) for h in records[0][2]), csv_quote(INJECTION)]) + "\n"
    body += "".join(",".join([*(csv_field(f) for f in fields), "1"]) + "\n"
                    for _, _, fields in records[1:])
    simulator.faults.part_bodies[(views_run, 1)] = gzip.compress(body.encode())

    report = csload.sync(settings, db=db_path, jobs=[VIEWS_JOB])

    con = duckdb.connect(str(db_path), read_only=True)
    try:
            got = con.execute(
            f'SELECT count(*) FROM views WHERE "{column_name(INJECTION)}" = ?',  # noqa: S608
            ["1"]).fetchone()
    finally:
        con.close()
    record("security", "SQL injection in a CSV header", header=INJECTION,
           message=f"loaded as text column {column_name(INJECTION)}, with a warning")
    assert report.exit_code == 0, [r.message for r in report.failed]
    assert got == (len(records) - 1,) and table_names(db_path) == {"views"}
    assert compare(db_path, simulator, [r for r in successful_runs(simulator, [VIEWS_JOB])
                                        if r != views_run]).rows_loaded > 0


# --- plain http -----------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://api.example.com", "http://203.0.113.7",
                                 "http://localhost.attacker.example",
                                 "http://127.0.0.1.nip.io:8080", "ftp://127.0.0.1"])
def test_an_auth_url_that_is_not_https_nor_loopback_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings(client_id="c", client_secret="s", auth_url=url)
    assert "https" in str(raised.value) or "not an http(s) URL" in str(raised.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://[::1]:8080",
                                 "http://localhost:8080", "https://api.example.com"])
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert Settings(client_id="c", client_secret="s", auth_url=url).auth_url == url


def test_a_token_endpoint_that_names_an_http_api_off_this_machine_is_refused(
    simulator: Simulator, settings: Settings, sim_thread: ServerHandle, secrets: Secrets,
    db_path: Path, caplog: pytest.LogCaptureFixture, record: Callable[..., None],
) -> None:
    caplog.set_level(logging.DEBUG)
    served = sim_thread.base_url
    simulator.base_url = OFF_MACHINE     # the token response's endpoint is built on it
    try:
        with pytest.raises(InsecureUrlError) as raised:
            csload.sync(settings, db=db_path)
    finally:
        simulator.base_url = served

    text = str(raised.value)
    record("security", "http API endpoint off this machine", refused=text)
    assert "the API endpoint must use https" in text and "203.0.113.7" in text
    # Nothing was asked of that address (it is not routed: a request would hang, then fail).
    assert dict(simulator.stats.requests) == {"token": 1}
    secrets.scan([*exception_texts(raised.value), *log_texts(caplog)], "the error")


@pytest.mark.parametrize("how", ["part URLs", "a storage redirect"])
def test_part_urls_or_redirects_to_http_off_this_machine_are_refused(
    how: str, simulator: Simulator, settings: Settings, secrets: Secrets, db_path: Path,
    caplog: pytest.LogCaptureFixture, record: Callable[..., None],
) -> None:
    caplog.set_level(logging.DEBUG)
    if how == "part URLs":
        simulator.config.storage_base_url = OFF_MACHINE
    else:
        simulator.faults.storage_redirect_to = OFF_MACHINE
    # Were a connection tried, it would fail fast rather than hang the test for 30 s.
    quick = replace(settings, limits=Limits(max_staged_runs=2, connect_timeout=0.5))

    report = csload.sync(quick, db=db_path)

    messages = [r.message or "" for r in report.failed]
    record("security", f"http {how} off this machine", runs_refused=len(messages),
           message=messages[0] if messages else None)
    assert report.exit_code == 3 and not report.loaded
    assert len(messages) == len(successful_runs(simulator))
    assert all("must use https" in m and "203.0.113.7" in m for m in messages), messages
    secrets.scan([*messages, *log_texts(caplog), json.dumps(report.to_json())], "the report")

    # And to a loopback address (the simulator itself), a redirect is followed.
    if how == "a storage redirect":
        simulator.faults.storage_redirect_to = settings.auth_url
        again = csload.sync(settings, db=db_path)
        assert again.exit_code == 0
        compare(db_path, simulator, successful_runs(simulator)).assert_exact()
        assert simulator.stats.faults["redirect"] > 0
