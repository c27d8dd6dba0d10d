"""The API client against aioresponses: retries, the errors it does not retry, the concurrency
limit.

No real waiting: `sleep` is a fake that records the delays asked for (in the limiter test, one
that also blocks until the test lets it go).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from csload.api.client import ExportClient
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.config import Limits, Settings
from csload.errors import ApiRequestError, ApiUnavailable
from tests.support.api_fakes import (
    ACCESS_TOKEN,
    AUTH_URL,
    CLIENT_SECRET,
    ENDPOINT,
    JOB,
    TOKEN_URL,
    FakeSleep,
    api,
    calls,
    env,
    error,
    grant,
)

# -- retries ------------------------------------------------------------------------------------


async def test_5xx_storm_is_retried_with_jittered_backoff(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    grant(mocked)
    url = api("/exports/1")
    mocked.get(url, status=503, payload=error("UNAVAILABLE", "try later"))
    mocked.get(url, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    mocked.get(url, exception=aiohttp.ServerDisconnectedError())
    mocked.get(url, payload=env(JOB))
    assert (await client.get_job(1)).job_id == 1119
    assert len(sleeper.delays) == 3
    for attempt, delay in enumerate(sleeper.delays, start=1):
        assert 0.0 <= delay <= 0.5 * 2 ** (attempt - 1)


async def test_429_retry_after_is_honoured(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    grant(mocked)
    url = api("/exports/1")
    mocked.get(url, status=429, headers={"Retry-After": "7"},
               payload=error("TOO_MANY_REQUESTS", "Too many requests"))
    mocked.get(url, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    mocked.get(url, status=429, headers={"Retry-After": "3600"})
    mocked.get(url, payload=env(JOB))
    await client.get_job(1)
    # Seconds as given; a date in the past means now; a huge value is capped (60 s here).
    assert sleeper.delays == [7.0, 0.0, 60.0]


async def test_retries_exhausted_is_api_unavailable(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    grant(mocked)
    mocked.get(api("/exports/1"), status=500, repeat=True,
               payload=error("INTERNAL", "boom"))
    with pytest.raises(ApiUnavailable) as info:
        await client.get_job(1)
    assert info.value.status == 500
    assert info.value.error_code == "INTERNAL"
    assert "gave up after 4 attempts" in str(info.value)
    assert len(calls(mocked, "GET", api("/exports/1"))) == 4
    assert len(sleeper.delays) == 3


async def test_connection_errors_are_retried(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    grant(mocked)
    mocked.get(api("/exports/1"), exception=aiohttp.ClientConnectionError("reset"))
    mocked.get(api("/exports/1"), exception=TimeoutError())
    mocked.get(api("/exports/1"), payload=JOB)
    assert (await client.get_job(1)).job_id == 1119
    assert len(sleeper.delays) == 2


@pytest.mark.parametrize(("status", "code"), [(400, "INVALID_PARAMETER"), (404, "NOT_FOUND"),
                                              (403, "FORBIDDEN"), (422, None)])
async def test_other_4xx_are_not_retried(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep, status: int,
    code: str | None
) -> None:
    grant(mocked)
    mocked.get(api("/exports/1"), status=status, repeat=True,
               payload=error(code, "nope") if code else {})
    with pytest.raises(ApiRequestError) as info:
        await client.get_job(1)
    assert info.value.status == status
    assert info.value.error_code == code
    assert len(calls(mocked, "GET", api("/exports/1"))) == 1
    assert sleeper.delays == []


async def test_a_rejected_job_shows_the_api_message(
    client: ExportClient, mocked: aioresponses
) -> None:
    grant(mocked)
    mocked.post(api("/exports"), status=400, payload=error(
        "INVALID_PARAMETER", "fields[2].fieldName: unknown field 'sesion_id'"))
    spec = JobSpec(name="x", format="CSV", scope="sessions", frequency="daily",
                   fields=(JobField("sesion_id"),))
    with pytest.raises(ApiRequestError) as info:
        await client.create_job(spec)
    assert str(info.value) == (
        "POST /v1/exports: the API rejected the request (HTTP 400 INVALID_PARAMETER: "
        "fields[2].fieldName: unknown field 'sesion_id')")
    assert (info.value.status, info.value.error_code) == (400, "INVALID_PARAMETER")
    assert (info.value.method, info.value.path) == ("POST", "/exports")


async def test_create_job_is_not_retried_after_a_5xx_but_is_after_a_429(
    client: ExportClient, mocked: aioresponses, sleeper: FakeSleep
) -> None:
    grant(mocked)
    spec = JobSpec(name="x", format="CSV", scope="sessions", frequency="daily",
                   fields=(JobField("session_id"),))
    mocked.post(api("/exports"), status=429, headers={"Retry-After": "2"})
    mocked.post(api("/exports"), payload=env({**JOB, "jobId": 5}))
    assert (await client.create_job(spec)).job_id == 5
    assert sleeper.delays == [2.0]

    mocked.post(api("/exports"), status=503)
    mocked.post(api("/exports"), payload=env({**JOB, "jobId": 6}))
    with pytest.raises(ApiUnavailable, match="may have processed"):
        await client.create_job(spec)
    assert len(calls(mocked, "POST", api("/exports"))) == 3


# -- concurrency --------------------------------------------------------------------------------


async def test_in_flight_requests_never_exceed_the_cap(mocked: aioresponses) -> None:
    settings = Settings(client_id="c", client_secret=CLIENT_SECRET, auth_url=AUTH_URL,
                        limits=Limits(api_concurrency=3))
    in_flight = 0
    peak = 0

    async def slow(url: URL, **kwargs: Any) -> CallbackResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(20):  # let every other task run: they must queue at the limiter
            await anyio.lowlevel.checkpoint()
        in_flight -= 1
        if "oauth" in str(url):
            return CallbackResult(payload={"access_token": ACCESS_TOKEN, "endpoint": ENDPOINT})
        return CallbackResult(payload=env(JOB))

    mocked.post(TOKEN_URL, callback=slow)
    mocked.get(api("/exports/1"), callback=slow, repeat=True)
    async with ExportClient(settings) as client, anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(client.get_job, 1)
    assert peak == 3
    assert len(calls(mocked, "GET", api("/exports/1"))) == 12


async def test_waiting_to_retry_holds_no_limiter_slot(mocked: aioresponses) -> None:
    settings = Settings(client_id="c", client_secret=CLIENT_SECRET, auth_url=AUTH_URL,
                        limits=Limits(api_concurrency=1))
    resume = anyio.Event()
    delays: list[float] = []

    async def blocking_sleep(delay: float) -> None:
        delays.append(delay)
        await resume.wait()

    grant(mocked)
    mocked.get(api("/exports/1"), status=503)
    mocked.get(api("/exports/1"), payload=JOB)
    mocked.get(api("/exports/2"), payload={**JOB, "jobId": 2})
    async with ExportClient(settings, sleep=blocking_sleep) as client, \
            anyio.create_task_group() as tg:
        tg.start_soon(client.get_job, 1)
        await anyio.wait_all_tasks_blocked()
        assert len(delays) == 1  # job 1 is backing off...
        # ...and job 2 goes through the single slot meanwhile.
        assert (await client.get_job(2)).job_id == 2
        resume.set()
