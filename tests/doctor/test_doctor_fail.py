"""Doctor fails with a clear cause and exit 1 when csload cannot work with the project: wrong
credentials, an endpoint that does not answer, files that expired, a value that does not load."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from click.testing import Result

from csload.api.client import ExportClient
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.config import Settings
from csload.doctor import Verdict, run_doctor
from csload.simulator import Simulator

EXPIRY_HINT = ("check the client id and secret; credentials expire a year after they are "
               "created: create new ones in the Contentsquare console")
API_CHECKS = ("jobs", "fields", "paging", "sample_csv", "sample_jsonl")


def expire_every_run(simulator: Simulator) -> None:
    """No new run, and every run's files past the storage retention."""
    for job in simulator.jobs:
        if simulator.job_state(job.job_id) == "ACTIVE":
            simulator.suspend(job.job_id)
    simulator.advance_days(simulator.config.file_retention_days + 1)


@pytest.mark.parametrize("plain_500", [False, True])
def test_wrong_credentials(cli: Callable[..., Result], simulator: Simulator,
                           plain_500: bool) -> None:
    # The contract's 401, and the plain 500 the real service was reported to answer.
    simulator.variants.credentials_error_500 = plain_500
    result = cli(env={"CONTENTSQUARE_CLIENT_SECRET": "not-the-secret"})
    assert result.exit_code == 1, result.output
    out = result.output
    assert "fail  credentials" in out and "rejected" in out
    assert EXPIRY_HINT in out
    assert "ok    token endpoint" in out   # it answered: the credentials are the problem
    assert "not-the-secret" not in out
    assert "result: csload cannot work with this project yet: 1 check(s) failed" in out


def test_auth_url_on_a_closed_port(settings: Settings, closed_url: str, db_path: Path) -> None:
    report = run_doctor(dataclasses.replace(settings, auth_url=closed_url), db=db_path)
    assert report.exit_code == 1
    token = report["token_endpoint"]
    assert token.verdict is Verdict.FAIL
    assert "no answer (cannot connect" in token.summary
    assert "check the auth URL" in (token.hint or "")
    assert [report[c].verdict for c in ("credentials", "scope", "endpoint", *API_CHECKS)] == \
        [Verdict.SKIP] * 8
    assert [c.id for c in report.failed] == ["token_endpoint"]


def test_cli_auth_url_on_a_closed_port(cli: Callable[..., Result], closed_url: str) -> None:
    result = cli("--auth-url", closed_url)
    assert result.exit_code == 1
    assert "fail  token endpoint" in result.output
    assert "auth URL: " + closed_url + " (flag --auth-url)" in result.output


def test_endpoint_that_does_not_answer(settings: Settings, token_only: Callable[[str], str],
                                       closed_url: str, db_path: Path) -> None:
    """The token endpoint works, but the endpoint its answer names does not."""
    auth_url = token_only(closed_url + "/api")
    report = run_doctor(dataclasses.replace(settings, auth_url=auth_url), db=db_path)
    assert report.exit_code == 1
    assert report["token_endpoint"].verdict is Verdict.OK
    assert report["credentials"].verdict is Verdict.OK
    endpoint = report["endpoint"]
    assert endpoint.verdict is Verdict.FAIL
    assert endpoint.summary.startswith(f"{closed_url}/api does not answer: ")
    assert "the endpoint the token response names" in (endpoint.hint or "")
    assert all(report[c].verdict is Verdict.SKIP for c in API_CHECKS)


def test_cli_endpoint_that_does_not_answer(cli: Callable[..., Result],
                                           token_only: Callable[[str], str],
                                           closed_url: str) -> None:
    result = cli("--auth-url", token_only(closed_url + "/api"))
    assert result.exit_code == 1
    assert f"fail  API endpoint       {closed_url}/api does not answer" in result.output


def test_expired_files_fail(settings: Settings, simulator: Simulator, db_path: Path) -> None:
    """Every run's files past the storage retention: nothing of either format can be read or
    loaded now, said clearly with what to do, exit 1 (csload.doctor.sample says why)."""
    expire_every_run(simulator)
    report = run_doctor(settings, db=db_path)
    assert report.exit_code == 1
    assert {c.id for c in report.failed} == {"sample_csv", "sample_jsonl"}
    for check_id in ("sample_csv", "sample_jsonl"):
        check = report[check_id]
        assert check.verdict is Verdict.FAIL
        assert check.data["expired"] is True and check.data["status"] == 403
        assert "its files have expired" in check.summary
        assert "the format could not be checked" in check.summary
        assert "csload backfill --gaps" in (check.hint or "")


def test_cli_expired_files(cli: Callable[..., Result], simulator: Simulator) -> None:
    simulator.variants.expired_files_status = 404
    expire_every_run(simulator)
    result = cli()
    assert result.exit_code == 1, result.output
    assert "fail  CSV sample" in result.output
    assert "its files have expired" in result.output
    assert "csload backfill --gaps" in result.output


def test_refused_fresh_url_fails(settings: Settings, simulator: Simulator,
                                 db_path: Path) -> None:
    """Storage refusing a URL whose files should still be kept is no expiry: a failure."""
    simulator.config.url_lifetime = -60   # every URL is handed out already expired
    report = run_doctor(settings, db=db_path)
    assert report.exit_code == 1
    check = report["sample_csv"]
    assert check.verdict is Verdict.FAIL
    assert "storage answered HTTP 403 for a freshly signed URL" in check.summary


def test_a_value_csload_cannot_load(settings: Settings, simulator: Simulator,
                                    db_path: Path) -> None:
    """The loader's error, with the column and value, when a file does not load."""
    sessions = simulator.job_named("Daily sessions").job_id
    newest = max(simulator.runs(sessions), key=lambda r: (r.finished_at, r.run_id))
    first = simulator.part_bodies(sessions, newest.run_id)[0].decode().split("\n")[0]
    simulator.faults.corrupt_part = (newest.run_id, 1)
    simulator.faults.corrupt_line = 1
    simulator.faults.corrupt_text = re.sub(r'"session_number":\d+', '"session_number":"many"',
                                           first)
    report = run_doctor(settings, db=db_path)
    check = report["sample_jsonl"]
    assert report.exit_code == 1
    assert check.verdict is Verdict.FAIL
    assert "csload cannot load part 1 (line 1)" in check.summary
    assert check.data["load"]["culprits"] == [{"column": "session_number", "value": '"many"'}]
    assert 'what fails (line 1): column session_number: value "many"' in check.details


def test_over_limit_answers_are_reported(settings: Settings, simulator: Simulator,
                                         db_path: Path) -> None:
    simulator.faults.api_faults_on_token = False
    simulator.faults.api_fail_status = 429
    simulator.faults.api_fail_next = 2
    report = run_doctor(settings, db=db_path)
    assert report.exit_code == 0
    check = report["over_limit"]
    assert check.verdict is Verdict.WARN
    assert check.summary.startswith("seen 2 time(s), the last with Retry-After")
    assert check.data == {"answers": 2, "retryAfter": True}


def test_control_characters_are_escaped(cli: Callable[..., Result], settings: Settings,
                                        simulator: Simulator) -> None:
    """Text from the API is printed without its control characters (a job name could
    otherwise clear the terminal or hide a line)."""
    spec = JobSpec(name="evil\x1b[2J\x1b[31mjob\r", format="JSONL", scope="sessions",
                   frequency="daily", fields=(JobField("session_id"),))

    async def create() -> None:
        async with ExportClient(settings) as client:
            await client.create_job(spec)

    anyio.run(create)
    result = cli()
    assert "\x1b" not in result.output and "\r" not in result.output
    assert "evil\\x1b[2J\\x1b[31mjob\\x0d" in result.output


def test_damaged_gzip_part_is_a_warning(settings: Settings, simulator: Simulator,
                                        db_path: Path) -> None:
    """A whole part whose gzip stream ends early: what it holds still loads, but it is said
    (a sync downloads such a part again)."""
    simulator.faults.storage_truncate_next = 1
    report = run_doctor(settings, db=db_path)
    check = report["sample_csv"]
    assert check.verdict is Verdict.WARN, check.summary
    assert "the gzip stream of the whole part ends early" in check.summary
    assert report.exit_code == 0


def test_project_the_credentials_cannot_reach(settings: Settings, db_path: Path) -> None:
    report = run_doctor(dataclasses.replace(settings, project_id=43), db=db_path)
    assert report.exit_code == 1
    assert report["token_endpoint"].verdict is Verdict.OK
    scope = report["scope"]
    assert scope.verdict is Verdict.FAIL
    assert "no access to that project" in scope.summary
    assert "CONTENTSQUARE_PROJECT_ID" in (scope.hint or "")


def test_account_level_credentials_without_project(settings: Settings, simulator: Simulator,
                                                   db_path: Path) -> None:
    simulator.config.account_level_credentials = True
    report = run_doctor(dataclasses.replace(settings, project_id=None), db=db_path)
    assert report.exit_code == 1
    assert report["token_endpoint"].verdict is Verdict.OK
    creds = report["credentials"]
    assert creds.verdict is Verdict.FAIL
    assert "project_id is required" in creds.summary
    assert "CONTENTSQUARE_PROJECT_ID" in (creds.hint or "")
