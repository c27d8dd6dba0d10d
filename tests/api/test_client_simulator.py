"""The API client against the simulator over real HTTP (fixtures from tests/conftest.py).

Nothing of csload is mocked. Waiting between retries goes through a fake `sleep` that records
the delays, so Retry-After is checked without waiting, and the simulator's clock only moves
when a test moves it.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from csload.api.auth import CREDENTIALS_HINT
from csload.api.client import ExportClient
from csload.api.models import JobField, Run
from csload.api.spec import JobSpec
from csload.config import Limits, RetryPolicy, Settings
from csload.errors import (
    ApiRequestError,
    ApiUnavailable,
    CredentialsRejected,
    IncompleteDownload,
    PartFilesGone,
    PartUrlExpired,
)
from csload.simulator import Simulator
from csload.transfer.host import StorageHost
from tests.support.api_fakes import FakeSleep
from tests.support.exportfmt import decode_parts, job_column_types

CAP = 4


@pytest.fixture
def sim_settings(simulator: Simulator, sim_url: str) -> Settings:
    client_id, client_secret, project_id = simulator.credentials
    return Settings(
        client_id=client_id, client_secret=client_secret, project_id=project_id,
        auth_url=sim_url,
        limits=Limits(api_concurrency=CAP, chunk_size=8192),
        retry=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=8.0),
    )


@pytest.fixture
async def sim_client(sim_settings: Settings, sleeper: FakeSleep) -> AsyncIterator[ExportClient]:
    async with ExportClient(sim_settings, sleep=sleeper) as client:
        yield client


def secrets_of(simulator: Simulator, client: ExportClient) -> list[str]:
    found = [simulator.credentials[1]]
    token = client._tokens.current
    if token is not None:
        found.append(token.access_token)
    return found


async def latest_run(client: ExportClient, simulator: Simulator, name: str) -> Run:
    job = simulator.job_named(name)
    run_id = simulator.runs(job.job_id)[-1].run_id
    return await client.get_run(job.job_id, run_id)


# -- auth and discovery -------------------------------------------------------------------------


async def test_auth_and_endpoint_discovery(
    sim_client: ExportClient, simulator: Simulator, sim_url: str
) -> None:
    jobs = await sim_client.list_jobs()
    assert sim_client.endpoint == f"{sim_url}/api"
    assert sorted(j.job_id for j in jobs) == [j.job_id for j in simulator.jobs]
    await sim_client.custom_vars()
    assert simulator.stats.token_requests == 1
    assert simulator.stats.tokens_issued == 1


async def test_expired_token_is_renewed_mid_sequence(
    sim_client: ExportClient, simulator: Simulator
) -> None:
    simulator.config.token_lifetime = 120
    job = simulator.job_named("Daily sessions")
    await sim_client.get_job(job.job_id)
    simulator.advance(121)  # the client's own clock did not move: only the API can tell it
    runs = await sim_client.list_runs(job.job_id)
    assert runs
    assert simulator.stats.tokens_issued == 2
    assert simulator.stats.statuses[401] == 1


async def test_token_is_renewed_ahead_of_expiry(
    sim_settings: Settings, simulator: Simulator, sleeper: FakeSleep
) -> None:
    simulator.config.token_lifetime = 120
    # The client's clock follows the simulator's, so it sees the lifetime run out.
    clock = simulator.clock.now
    async with ExportClient(sim_settings, sleep=sleeper,
                            clock=lambda: clock().timestamp()) as client:
        await client.list_jobs()
        simulator.advance(100)
        await client.list_jobs()
        assert simulator.stats.tokens_issued == 1
        simulator.advance(9)  # 109 s: inside the 12 s renewal margin
        await client.list_jobs()
    assert simulator.stats.tokens_issued == 2
    assert simulator.stats.statuses[401] == 0


@pytest.mark.parametrize("plain_500", [False, True], ids=["401", "plain-500"])
async def test_wrong_credentials_are_rejected_quickly(
    sim_settings: Settings, simulator: Simulator, sleeper: FakeSleep, plain_500: bool
) -> None:
    simulator.variants.credentials_error_500 = plain_500
    wrong = Settings(client_id=sim_settings.client_id, client_secret="not-the-secret-xyz",
                     auth_url=sim_settings.auth_url, retry=sim_settings.retry)
    async with ExportClient(wrong, sleep=sleeper) as client:
        with pytest.raises(CredentialsRejected, match=re.escape(CREDENTIALS_HINT)) as info:
            await client.list_jobs()
    assert "not-the-secret-xyz" not in str(info.value)
    assert simulator.stats.token_requests == (2 if plain_500 else 1)
    assert len(sleeper.delays) == (1 if plain_500 else 0)


# -- every endpoint, every variant --------------------------------------------------------------

VARIANTS = ["plain", "no_envelope", "string_ids", "bare_frequency", "files_without_part_id",
            "files_without_expiration", "minimal_token_response"]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_every_endpoint(
    sim_client: ExportClient, simulator: Simulator, variant: str
) -> None:
    if variant != "plain":
        setattr(simulator.variants, variant, True)
    truth_jobs = {j.job_id: j for j in simulator.jobs}

    jobs = await sim_client.list_jobs()
    assert sorted(j.job_id for j in jobs) == sorted(truth_jobs)
    daily = await sim_client.list_jobs(frequency="daily", scope="sessions", order="DESC")
    assert {j.name for j in daily} == {"Daily sessions", "Legacy sessions (CSV)"}

    sessions = simulator.job_named("Daily sessions")
    job = await sim_client.get_job(sessions.job_id)
    assert (job.job_id, job.name, job.format, job.scope, job.frequency) == (
        sessions.job_id, "Daily sessions", "JSONL", "sessions", "daily")
    assert [f.column_name for f in job.fields] == [f.column_name for f in sessions.fields]

    runs = await sim_client.list_runs(sessions.job_id, order="ASC")
    assert [r.run_id for r in runs] == [r.run_id for r in simulator.runs(sessions.job_id)]
    assert all(r.job_id == sessions.job_id and r.parts is None for r in runs)
    assert all(r.end_date - r.start_date == timedelta(days=1) for r in runs
               if r.start_date and r.end_date)

    successful = await sim_client.successful_runs()
    assert {r.run_id for r in runs} <= {r.run_id for r in successful}
    assert all(r.state == "SUCCESS" for r in successful)

    detail = await sim_client.get_run(sessions.job_id, runs[-1].run_id)
    assert detail.parts
    assert [p.part_id for p in detail.parts] == list(range(1, len(detail.parts) + 1))
    has_expiry = variant != "files_without_expiration"
    assert all((p.expiration_date is not None) == has_expiry for p in detail.parts)

    fields = await sim_client.exportable_fields("views")
    assert {"view_number", "url", "session_id"} <= {f.name for f in fields}
    custom = await sim_client.custom_vars()
    assert custom and all(v.position >= 1 and v.name for v in custom)
    start = runs[0].start_date
    assert start is not None
    keys = await sim_client.dynamic_var_keys(start.date(), start.date() + timedelta(days=7))
    assert keys and all(k.key for k in keys)


async def test_create_job_and_validation_message(
    sim_client: ExportClient, simulator: Simulator
) -> None:
    start = simulator.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    spec = JobSpec(name="Backfill views", format="CSV", scope="views", frequency="once",
                   fields=(JobField("session_id"), JobField("view_number"),
                           JobField("url", alias_name="page")),
                   date_from=start - timedelta(days=3), date_to=start - timedelta(days=1))
    job = await sim_client.create_job(spec)
    assert job.name == "Backfill views" and job.frequency == "once"
    assert job.job_id in {j.job_id for j in await sim_client.list_jobs()}
    assert (await sim_client.get_job(job.job_id)).date_from == spec.date_from

    bad = JobSpec(name="Typo", format="CSV", scope="views", frequency="daily",
                  fields=(JobField("sesion_id"),))
    with pytest.raises(ApiRequestError) as info:
        await sim_client.create_job(bad)
    assert info.value.status == 400
    assert info.value.error_code
    assert "sesion_id" in str(info.value)  # the API's own message, shown as is


async def test_unknown_job_is_a_404_not_retried(
    sim_client: ExportClient, simulator: Simulator, sleeper: FakeSleep
) -> None:
    with pytest.raises(ApiRequestError) as info:
        await sim_client.get_job(999_999)
    assert info.value.status == 404
    assert sleeper.delays == []


# -- pagination ---------------------------------------------------------------------------------


async def test_pagination_across_several_pages(
    sim_settings: Settings, simulator: Simulator, sleeper: FakeSleep
) -> None:
    simulator.advance_days(4)  # more runs: 7 days of each daily job
    sessions = simulator.job_named("Daily sessions")
    expected_runs = [r.run_id for r in simulator.runs(sessions.job_id)]
    assert len(expected_runs) >= 7
    async with ExportClient(sim_settings, sleep=sleeper, page_size=2) as client:
        runs = await client.list_runs(sessions.job_id, order="ASC")
        jobs = await client.list_jobs()
        successful = await client.successful_runs()
    assert [r.run_id for r in runs] == expected_runs
    assert len(jobs) == len(simulator.jobs) == 3
    assert len({r.run_id for r in successful}) == len(successful) >= 2 * 7
    stats = simulator.stats.requests
    assert stats["list_runs"] == len(expected_runs) // 2 + 1
    assert stats["list_jobs"] == 2


# -- retries ------------------------------------------------------------------------------------


async def test_429_and_5xx_storm_ends_in_success(
    sim_settings: Settings, simulator: Simulator, sleeper: FakeSleep
) -> None:
    simulator.faults.api_429_rate = 0.25
    simulator.faults.api_5xx_rate = 0.25
    settings = Settings(**{**sim_settings.__dict__, "retry": RetryPolicy(max_attempts=30)})
    job = simulator.job_named("Daily pageviews")
    async with ExportClient(settings, sleep=sleeper) as client:
        results = []
        for _ in range(10):
            results.append(await client.get_job(job.job_id))
        runs = await client.list_runs(job.job_id, order="ASC")
    assert all(j.job_id == job.job_id for j in results)
    assert [r.run_id for r in runs] == [r.run_id for r in simulator.runs(job.job_id)]
    faults = simulator.stats.faults
    server_errors = sum(n for name, n in faults.items() if name.startswith("api_5"))
    assert faults["api_429"] > 0 and server_errors > 0
    # Every injected failure cost one wait, and nothing else did.
    assert len(sleeper.delays) == faults["api_429"] + server_errors


async def test_retry_after_of_the_server_is_honoured(
    sim_client: ExportClient, simulator: Simulator, sleeper: FakeSleep
) -> None:
    await sim_client.list_jobs()
    simulator.faults.retry_after = 4
    simulator.faults.api_fail_status = 429
    simulator.faults.api_fail_next = 2
    await sim_client.list_jobs()
    assert sleeper.delays == [4.0, 4.0]


async def test_persistent_5xx_ends_in_api_unavailable(
    sim_client: ExportClient, simulator: Simulator, sleeper: FakeSleep
) -> None:
    await sim_client.list_jobs()
    simulator.faults.api_fail_status = 503
    simulator.faults.api_fail_next = 100
    with pytest.raises(ApiUnavailable, match="gave up after 5 attempts"):
        await sim_client.list_jobs()
    assert len(sleeper.delays) == 4


# -- the concurrency cap ------------------------------------------------------------------------


async def test_in_flight_requests_reach_but_never_exceed_the_cap(
    sim_client: ExportClient, simulator: Simulator
) -> None:
    job = simulator.job_named("Daily sessions")
    await sim_client.get_job(job.job_id)  # the token first: it counts as an API request too
    simulator.stats.reset()
    simulator.pause_api()
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(sim_client.get_job, job.job_id)
        with anyio.fail_after(30):
            await simulator.wait_api_held(CAP)
        # Give any request the limiter failed to hold back every chance to arrive.
        await anyio.wait_all_tasks_blocked()
        assert simulator.stats.api_in_flight == CAP
        simulator.resume_api()
    assert simulator.stats.max_api_in_flight == CAP
    assert simulator.stats.api_requests == 20
    assert simulator.stats.concurrency_rejections == 0


async def test_cap_holds_under_latency(
    sim_client: ExportClient, simulator: Simulator
) -> None:
    simulator.faults.latency = 0.02
    job = simulator.job_named("Daily pageviews")
    async with anyio.create_task_group() as tg:
        for _ in range(16):
            tg.start_soon(sim_client.list_runs, job.job_id)
    assert simulator.stats.max_api_in_flight <= CAP
    assert simulator.stats.concurrency_rejections == 0


# -- downloads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Daily sessions", "Daily pageviews"])
async def test_downloaded_parts_hold_exactly_the_runs_rows(
    sim_client: ExportClient, simulator: Simulator, tmp_path: Path, name: str
) -> None:
    run = await latest_run(sim_client, simulator, name)
    job = await sim_client.get_job(run.job_id)
    assert run.parts and len(run.parts) >= 2
    bodies = []
    for part in run.parts:
        dest = tmp_path / f"part-{part.part_id}"
        result = await StorageHost(sim_client).download_part(part, dest, job_id=run.job_id,
                                                run_id=run.run_id)
        assert result.gzip is True
        assert result.bytes_written == dest.stat().st_size
        bodies.append(gzip.decompress(dest.read_bytes()))
    rows = decode_parts(bodies, job.format, job_column_types(job.scope, job.fields))
    assert rows == simulator.truth(run.job_id, run.run_id)
    assert simulator.stats.storage_requests == len(run.parts)
    assert simulator.stats.storage_with_authorization == 0


async def test_uncompressed_parts_are_accepted(
    sim_client: ExportClient, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.variants.uncompressed_parts = True
    run = await latest_run(sim_client, simulator, "Daily pageviews")
    assert run.parts
    job = await sim_client.get_job(run.job_id)
    bodies = []
    for part in run.parts:
        dest = tmp_path / f"p{part.part_id}.csv"
        result = await StorageHost(sim_client).download_part(part, dest, job_id=run.job_id,
                                                run_id=run.run_id)
        assert result.gzip is False
        bodies.append(dest.read_bytes())
    rows = decode_parts(bodies, "CSV", job_column_types(job.scope, job.fields))
    assert rows == simulator.truth(run.job_id, run.run_id)


async def test_storage_faults_are_retried_honouring_retry_after(
    sim_client: ExportClient, simulator: Simulator, tmp_path: Path, sleeper: FakeSleep
) -> None:
    run = await latest_run(sim_client, simulator, "Daily sessions")
    assert run.parts
    simulator.faults.retry_after = 6
    simulator.faults.storage_503_next = 1
    simulator.faults.storage_cut_next = 1
    simulator.faults.storage_truncate_next = 1
    dest = tmp_path / "p1.gz"
    result = await StorageHost(sim_client).download_part(run.parts[0], dest, job_id=run.job_id,
                                            run_id=run.run_id)
    assert result.bytes_written == dest.stat().st_size
    assert gzip.decompress(dest.read_bytes())
    assert sleeper.delays[0] == 6.0 and len(sleeper.delays) == 3
    assert simulator.stats.faults["slowdown"] == 1
    assert simulator.stats.faults["cut"] == 1
    assert simulator.stats.faults["truncate"] == 1
    assert simulator.stats.storage_with_authorization == 0


@pytest.mark.parametrize("fault", ["storage_cut_next", "storage_truncate_next"])
async def test_cut_or_truncated_part_is_an_incomplete_download(
    sim_client: ExportClient, simulator: Simulator, tmp_path: Path, fault: str
) -> None:
    run = await latest_run(sim_client, simulator, "Daily sessions")
    assert run.parts
    setattr(simulator.faults, fault, 100)
    dest = tmp_path / "p.gz"
    with pytest.raises(IncompleteDownload) as info:
        await StorageHost(sim_client).download_part(run.parts[0], dest, job_id=run.job_id,
                                       run_id=run.run_id)
    assert f"job {run.job_id}, run {run.run_id}, part 1" in str(info.value)
    assert "Signature" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    assert simulator.stats.storage_requests == 5


async def test_expired_url_is_reported_and_a_fresh_run_detail_fixes_it(
    sim_client: ExportClient, simulator: Simulator, tmp_path: Path, sleeper: FakeSleep
) -> None:
    run = await latest_run(sim_client, simulator, "Daily sessions")
    assert run.parts
    simulator.advance(simulator.config.url_lifetime + 1)
    with pytest.raises(PartUrlExpired) as info:
        await StorageHost(sim_client).download_part(
            run.parts[0], tmp_path / "p.gz", job_id=run.job_id, run_id=run.run_id)
    message = str(info.value)
    assert f"job {run.job_id}, run {run.run_id}, part 1" in message
    assert "fetch the run again" in message
    assert "Signature" not in message and "Expires=" not in message
    assert sleeper.delays == []
    assert list(tmp_path.iterdir()) == []

    fresh = await sim_client.get_run(run.job_id, run.run_id)
    assert fresh.parts
    await StorageHost(sim_client).download_part(
        fresh.parts[0], tmp_path / "p.gz", job_id=run.job_id, run_id=run.run_id)


async def test_files_past_retention_are_reported_gone(
    sim_client: ExportClient, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.variants.expired_files_status = 404
    simulator.config.url_lifetime = 30 * 86_400
    run = await latest_run(sim_client, simulator, "Daily sessions")
    assert run.parts
    simulator.advance(8 * 86_400)
    with pytest.raises(PartFilesGone, match="gone") as info:
        await StorageHost(sim_client).download_part(
            run.parts[0], tmp_path / "p.gz", job_id=run.job_id, run_id=run.run_id)
    assert not isinstance(info.value, PartUrlExpired)


# -- secrets ------------------------------------------------------------------------------------


async def test_no_secret_in_any_error_log_or_repr(
    sim_client: ExportClient, simulator: Simulator, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run = await latest_run(sim_client, simulator, "Daily sessions")
    assert run.parts
    texts: list[str] = [repr(sim_client), repr(run), repr(run.parts)]
    simulator.faults.storage_cut_next = 100
    with pytest.raises(IncompleteDownload) as cut:
        await StorageHost(sim_client).download_part(
            run.parts[0], tmp_path / "a.gz", job_id=run.job_id, run_id=run.run_id)
    simulator.faults.reset()
    simulator.advance(simulator.config.url_lifetime + 1)
    with pytest.raises(PartUrlExpired) as expired:
        await StorageHost(sim_client).download_part(
            run.parts[0], tmp_path / "b.gz", job_id=run.job_id, run_id=run.run_id)
    simulator.faults.api_fail_next = 100
    with pytest.raises(ApiUnavailable) as unavailable:
        await sim_client.list_jobs()
    for error in (cut.value, expired.value, unavailable.value):
        texts += [str(error), repr(error)]
    texts.append(caplog.text)
    signatures = [p.url.split("?", 1)[1] for p in run.parts]
    for text in texts:
        for secret in secrets_of(simulator, sim_client) + signatures:
            assert secret not in text
