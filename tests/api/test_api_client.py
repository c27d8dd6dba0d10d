"""The API client against aioresponses: auth, token renewal, credentials, envelope, endpoints,
pagination, and a client used outside `async with`.

Retries and the concurrency limit are tested in test_api_client_retry.py, secrets in
test_api_client_secrets.py. No real waiting: `sleep` is a fake that records the delays asked
for.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from aioresponses import aioresponses
from yarl import URL

from csload.api.auth import CREDENTIALS_HINT
from csload.api.client import ExportClient
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.config import Settings
from csload.errors import (
    ApiUnavailable,
    AuthError,
    ConfigError,
    CredentialsRejected,
    InsecureUrlError,
)
from tests.support.api_fakes import (
    ACCESS_TOKEN,
    AUTH_URL,
    CLIENT_SECRET,
    ENDPOINT,
    JOB,
    TOKEN_URL,
    FakeSleep,
    all_calls,
    api,
    calls,
    env,
    error,
    grant,
)

SECOND_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNvbmQifQ.c2Vjb25kLXNpZw"

RUN = {"jobRunId": 130348, "jobId": 1119, "state": "SUCCESS",
       "startDate": "2026-11-24T00:00:00.000Z", "endDate": "2026-11-25T00:00:00.000Z",
       "createdAt": "2026-11-25T04:00:00.000Z", "finishedAt": "2026-11-25T04:21:13.000Z"}


# -- auth and endpoint discovery ----------------------------------------------------------------


async def test_token_request_and_endpoint_discovery(
    client: ExportClient, mocked: aioresponses
) -> None:
    grant(mocked)
    mocked.get(api("/exports/1119"), payload=env(JOB))
    job = await client.get_job(1119)
    assert job.job_id == 1119
    (token_call,) = calls(mocked, "POST", TOKEN_URL)
    assert orjson.loads(token_call.kwargs["data"]) == {
        "client_id": "client-1", "client_secret": CLIENT_SECRET,
        "grant_type": "client_credentials", "scope": "data-export", "project_id": 42}
    assert "Authorization" not in token_call.kwargs["headers"]
    (job_call,) = calls(mocked, "GET", api("/exports/1119"))
    assert job_call.kwargs["headers"]["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert client.endpoint == ENDPOINT


async def test_project_id_is_only_sent_when_given(mocked: aioresponses) -> None:
    settings = Settings(client_id="c", client_secret=CLIENT_SECRET, auth_url=AUTH_URL)
    grant(mocked)
    mocked.get(api("/exports/1"), payload=JOB)
    async with ExportClient(settings) as client:
        await client.get_job(1)
    (token_call,) = calls(mocked, "POST", TOKEN_URL)
    assert "project_id" not in orjson.loads(token_call.kwargs["data"])


async def test_one_token_serves_many_calls(client: ExportClient, mocked: aioresponses) -> None:
    grant(mocked)
    mocked.get(api("/exports/1"), payload=JOB, repeat=True)
    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(client.get_job, 1)
    assert len(calls(mocked, "POST", TOKEN_URL)) == 1
    assert len(calls(mocked, "GET", api("/exports/1"))) == 6


async def test_insecure_endpoint_is_refused(client: ExportClient, mocked: aioresponses) -> None:
    grant(mocked, endpoint="http://api.eu.example.test")
    with pytest.raises(InsecureUrlError):
        await client.get_job(1)


async def test_session_without_default_auth_header(client: ExportClient) -> None:
    session = client._require_session()
    assert "Authorization" not in session.headers
    assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)


async def test_a_shared_session_with_auth_headers_is_refused(api_settings: Settings) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer x"}) as session:
        with pytest.raises(ConfigError, match="storage host"):
            ExportClient(api_settings, session=session)


async def test_a_shared_session_is_left_open(
    api_settings: Settings, mocked: aioresponses
) -> None:
    grant(mocked)
    mocked.get(api("/exports/1"), payload=JOB)
    async with aiohttp.ClientSession() as session:
        async with ExportClient(api_settings, session=session) as client:
            await client.get_job(1)
        assert not session.closed


# -- token renewal ------------------------------------------------------------------------------


async def test_jwt_expired_renews_once_and_retries(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    grant(mocked)
    grant(mocked, token=SECOND_TOKEN)
    mocked.get(api("/exports/1"), status=401,
               payload=error("JWT_EXPIRED", "Auth token is expired."))
    mocked.get(api("/exports/1"), payload=env(JOB))
    assert (await client.get_job(1)).job_id == 1119
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2
    first, second = calls(mocked, "GET", api("/exports/1"))
    assert first.kwargs["headers"]["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert second.kwargs["headers"]["Authorization"] == f"Bearer {SECOND_TOKEN}"
    assert sleeper.delays == []


async def test_a_fresh_token_refused_again_is_an_auth_error(
    client: ExportClient, mocked: aioresponses
) -> None:
    grant(mocked, repeat=True)
    mocked.get(api("/exports/1"), status=401, repeat=True,
               payload=error("JWT_EXPIRED", "Auth token is expired."))
    with pytest.raises(AuthError, match="freshly issued token"):
        await client.get_job(1)
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2
    assert len(calls(mocked, "GET", api("/exports/1"))) == 2


async def test_token_is_renewed_before_it_expires(
    api_settings: Settings, mocked: aioresponses
) -> None:
    now = [0.0]
    grant(mocked, expires_in=600)
    grant(mocked, token=SECOND_TOKEN, expires_in=600)
    mocked.get(api("/exports/1"), payload=JOB, repeat=True)
    async with ExportClient(api_settings, clock=lambda: now[0]) as client:
        await client.get_job(1)
        now[0] = 539.0  # renewal is due 60 s before the end of the 600 s lifetime
        await client.get_job(1)
        assert len(calls(mocked, "POST", TOKEN_URL)) == 1
        now[0] = 540.0
        await client.get_job(1)
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2
    last = calls(mocked, "GET", api("/exports/1"))[-1]
    assert last.kwargs["headers"]["Authorization"] == f"Bearer {SECOND_TOKEN}"


# -- wrong credentials, scope -------------------------------------------------------------------


async def test_wrong_credentials_401_fail_at_once(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    mocked.post(TOKEN_URL, status=401, repeat=True,
                payload=error("INVALID_CREDENTIALS", "Invalid client credentials"))
    with pytest.raises(CredentialsRejected) as info:
        await client.list_jobs()
    message = str(info.value)
    assert message.startswith("credentials rejected by auth.example.test (HTTP 401")
    assert message.endswith(CREDENTIALS_HINT)
    assert len(calls(mocked, "POST", TOKEN_URL)) == 1
    assert sleeper.delays == []


async def test_wrong_credentials_plain_500_fail_after_one_retry(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    mocked.post(TOKEN_URL, status=500, body="Internal Server Error",
                content_type="text/plain", repeat=True)
    with pytest.raises(CredentialsRejected, match=re.escape(CREDENTIALS_HINT)):
        await client.list_jobs()
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2
    assert len(sleeper.delays) == 1


async def test_a_transient_500_on_the_token_endpoint_is_survived(
    client: ExportClient, mocked: aioresponses
) -> None:
    mocked.post(TOKEN_URL, status=500, body="")
    grant(mocked)
    mocked.get(api("/exports/1"), payload=JOB)
    assert (await client.get_job(1)).job_id == 1119


async def test_missing_scope_is_an_auth_error_naming_it(
    client: ExportClient, mocked: aioresponses
) -> None:
    mocked.post(TOKEN_URL, status=403, payload=error("FORBIDDEN", "Forbidden"))
    with pytest.raises(AuthError, match="data-export") as info:
        await client.list_jobs()
    assert not isinstance(info.value, CredentialsRejected)


async def test_token_endpoint_outage_is_retried_then_unavailable(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    mocked.post(TOKEN_URL, status=503, repeat=True)
    with pytest.raises(ApiUnavailable, match="gave up after 4 attempts"):
        await client.list_jobs()
    assert len(sleeper.delays) == 3


# -- envelope and id tolerance ------------------------------------------------------------------


@pytest.mark.parametrize("wrap", [env, lambda p: p], ids=["envelope", "bare"])
async def test_every_object_endpoint_with_or_without_envelope(
    client: ExportClient, mocked: aioresponses, wrap: Any
) -> None:
    grant(mocked)
    string_ids = {**JOB, "jobId": "1119", "frequency": "daily", "segmentId": "5"}
    mocked.get(api("/exports/1119"), payload=wrap(string_ids))
    job = await client.get_job(1119)
    assert (job.job_id, job.frequency, job.segment_id) == (1119, "daily", 5)
    assert [f.column_name for f in job.fields] == ["session_id", "visitor"]

    detail = {**RUN, "jobRunId": "130348", "jobId": "1119", "files": [
        {"url": "https://storage.example.test/a?X-Amz-Signature=abc"},
        {"partId": "7", "url": "https://storage.example.test/b?X-Amz-Signature=def",
         "expirationDate": "2026-12-02T04:21:13.000Z"},
    ]}
    mocked.get(api("/exports/1119/runs/130348"), payload=wrap(detail))
    run = await client.get_run(1119, 130348)
    assert (run.run_id, run.job_id, run.state) == (130348, 1119, "SUCCESS")
    assert run.start_date == datetime(2026, 11, 24, tzinfo=UTC)
    assert run.parts is not None
    assert [p.part_id for p in run.parts] == [1, 7]
    assert run.parts[0].expiration_date is None
    assert run.parts[1].expiration_date == datetime(2026, 12, 2, 4, 21, 13, tzinfo=UTC)
    assert "X-Amz-Signature" not in repr(run)


async def test_run_detail_without_files_has_no_parts(
    client: ExportClient, mocked: aioresponses
) -> None:
    grant(mocked)
    mocked.get(api("/exports/1/runs/2"), payload=env({**RUN, "state": "FAILURE"}))
    run = await client.get_run(1, 2)
    assert run.parts == ()


@pytest.mark.parametrize("wrap", [env, lambda p: p], ids=["envelope", "bare"])
async def test_every_list_endpoint(
    client: ExportClient, mocked: aioresponses, wrap: Any
) -> None:
    grant(mocked)
    # A page shorter than the limit ends a list only once an empty page follows it: the server
    # may clamp the limit (contract section 9).
    mocked.get(api("/exports", state="ACTIVE", format="JSONL", frequency="daily",
                   scope="sessions", order="ASC", page=1, limit=100),
               payload=wrap([JOB, {**JOB, "jobId": "1120", "frequency": "once"}]))
    mocked.get(api("/exports", state="ACTIVE", format="JSONL", frequency="daily",
                   scope="sessions", order="ASC", page=2, limit=100), payload=wrap([]))
    jobs = await client.list_jobs(state="ACTIVE", format="JSONL", frequency="daily",
                                  scope="sessions", order="ASC")
    assert [(j.job_id, j.frequency) for j in jobs] == [(1119, "daily"), (1120, "once")]

    mocked.get(api("/exports/1119/runs", state="SUCCESS", order="DESC", page=1, limit=100),
               payload=wrap([{k: v for k, v in RUN.items() if k != "jobId"}]))
    mocked.get(api("/exports/1119/runs", state="SUCCESS", order="DESC", page=2, limit=100),
               payload=wrap([]))
    runs = await client.list_runs(1119, state="SUCCESS", order="DESC")
    assert [(r.run_id, r.job_id, r.parts) for r in runs] == [(130348, 1119, None)]

    mocked.get(api("/exports/successful-runs", page=1, limit=100),
               payload=wrap([RUN, {**RUN, "jobRunId": "9", "jobId": "3"}]))
    mocked.get(api("/exports/successful-runs", page=2, limit=100), payload=wrap([]))
    runs = await client.successful_runs()
    assert [(r.run_id, r.job_id) for r in runs] == [(130348, 1119), (9, 3)]

    mocked.get(api("/exportable-fields", scope="views"),
               payload=wrap([{"name": "view_number", "type": "UInt16", "description": "n"},
                             {"name": "url"}]))
    fields = await client.exportable_fields("views")
    assert [(f.name, f.type) for f in fields] == [("view_number", "UInt16"), ("url", None)]

    mocked.get(api("/custom-vars"), payload=wrap([{"position": 1, "name": "plan"}]))
    assert [(v.position, v.name) for v in await client.custom_vars()] == [(1, "plan")]

    mocked.get(api("/dynamic-var-keys", **{"from": "2026-11-01T00:00:00.000Z",
                                           "to": "2026-11-08T00:00:00.000Z"}),
               payload=wrap([{"key": "cart", "type": "string"}, "color"]))
    keys = await client.dynamic_var_keys(date(2026, 11, 1), date(2026, 11, 8))
    assert [k.key for k in keys] == ["cart", "color"]


async def test_custom_vars_falls_back_to_the_underscore_path(
    client: ExportClient, mocked: aioresponses
) -> None:
    grant(mocked)
    mocked.get(api("/custom-vars"), status=404, payload=error("NOT_FOUND", "no route"))
    mocked.get(api("/custom_vars"), payload=env([{"position": "2", "name": "tier"}]),
               repeat=True)
    assert [v.position for v in await client.custom_vars()] == [2]
    # The working path is remembered.
    await client.custom_vars()
    assert len(calls(mocked, "GET", api("/custom-vars"))) == 1
    assert len(calls(mocked, "GET", api("/custom_vars"))) == 2


async def test_create_job_sends_the_spec(client: ExportClient, mocked: aioresponses) -> None:
    grant(mocked)
    mocked.post(api("/exports"), payload=env({**JOB, "jobId": 2001, "frequency":
                                              {"value": "once"}}))
    spec = JobSpec(name="Backfill", format="CSV", scope="views", frequency="once",
                   fields=(JobField("session_id"), JobField("url", alias_name="page")),
                   date_from=datetime(2026, 11, 1, tzinfo=UTC),
                   date_to=datetime(2026, 11, 8, tzinfo=UTC))
    job = await client.create_job(spec)
    assert job.job_id == 2001
    (call,) = calls(mocked, "POST", api("/exports"))
    assert orjson.loads(call.kwargs["data"]) == spec.to_api()
    assert call.kwargs["headers"]["Content-Type"] == "application/json"


# -- pagination ---------------------------------------------------------------------------------


async def test_lists_are_read_page_by_page_until_a_short_page(
    api_settings: Settings, mocked: aioresponses
) -> None:
    grant(mocked)
    jobs = [{**JOB, "jobId": n} for n in range(1, 8)]
    for page in (1, 2, 3, 4):
        mocked.get(api("/exports", order="ASC", page=page, limit=2),
                   payload=env(jobs[(page - 1) * 2 : page * 2]))
    async with ExportClient(api_settings, page_size=2) as client:
        found = await client.list_jobs()
    assert [j.job_id for j in found] == list(range(1, 8))
    pages = sorted(dict(URL(url).query)["page"] for m, url, _ in all_calls(mocked)
                   if m == "GET")
    assert pages == ["1", "2", "3", "4"]


# -- using the client ---------------------------------------------------------------------------


async def test_using_a_client_outside_async_with_is_a_clear_error(
    api_settings: Settings
) -> None:
    client = ExportClient(api_settings)
    with pytest.raises(RuntimeError, match="async with"):
        await client.get_job(1)
