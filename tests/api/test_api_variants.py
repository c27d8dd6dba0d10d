"""The client against each section 9 API variant (points 6-10), over real HTTP on 127.0.0.1.

Each test runs with the variant on and off and checks the whole answer against the
simulator's truth; the proxy tests run a proxy of their own (tests/support/proxy.py). Waiting
between retries goes through a fake `sleep` that records the delays.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest
from click.testing import CliRunner

from csload.api.client import ExportClient
from csload.api.models import Job, JobField
from csload.api.proxy import Proxies
from csload.api.retry import RequestKind, Verdict, classify, is_over_limit
from csload.api.spec import JobSpec
from csload.cli import main
from csload.config import Limits, RetryPolicy, Settings
from csload.errors import ApiError, ConfigError
from csload.pipeline.sync import sync_async
from csload.simulator import SimConfig, Simulator
from csload.simulator.config import Variants
from csload.simulator.variables import dynamic_var_keys
from csload.transfer.host import StorageHost
from tests.support.api_fakes import FakeSleep
from tests.support.proxy import ForwardingProxy, serve_tls, tls_pair

SIM_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD",
                   "http_proxy", "https_proxy", "no_proxy", "all_proxy", "NETRC")


def settings_for(simulator: Simulator, url: str, *, api_concurrency: int = 4,
                 max_attempts: int = 5) -> Settings:
    client_id, client_secret, project_id = simulator.credentials
    return Settings(
        client_id=client_id, client_secret=client_secret, project_id=project_id, auth_url=url,
        limits=Limits(api_concurrency=api_concurrency, chunk_size=8192),
        retry=RetryPolicy(max_attempts=max_attempts, base_delay=0.5, max_delay=8.0),
    )


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables of the machine running the tests must not leak into them."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def sim_client(simulator: Simulator, sim_url: str,
                     sleeper: FakeSleep) -> AsyncIterator[ExportClient]:
    async with ExportClient(settings_for(simulator, sim_url), sleep=sleeper) as client:
        yield client


def clamping(days: int, on: bool) -> Simulator:
    """A simulator with `days` daily runs per job; `on`: pages of 50, runs oldest first."""
    variants = Variants(page_size=50, runs_oldest_first_by_default=True) if on else Variants()
    return Simulator(SimConfig(seed=7, days=days, sessions_per_day=20,
                               start_time=SIM_START, variants=variants))


def newest_first(simulator: Simulator, job_id: int) -> list[int]:
    runs = simulator.runs(job_id)
    return [r.run_id for r in sorted(runs, key=lambda r: (r.start, r.run_id), reverse=True)]


# -- 6. pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize("on", [False, True], ids=["contract", "clamped"])
async def test_list_runs_reads_every_clamped_page_newest_first(
    sleeper: FakeSleep, on: bool
) -> None:
    sim = clamping(123, on)
    job = sim.job_named("Daily sessions")
    async with sim.serve() as url, ExportClient(settings_for(sim, url), sleep=sleeper) as client:
        runs = await client.list_runs(job.job_id)
        successful = await client.successful_runs()
        jobs = await client.list_jobs()
        observed = client.observed
    assert [r.run_id for r in runs] == newest_first(sim, job.job_id)
    assert len(runs) == 123
    every = {r.run_id for j in sim.jobs for r in sim.runs(j.job_id)
             if sim.run_state(r.run_id) == "SUCCESS"}
    assert [r.run_id for r in successful if r.run_id in every] == [r.run_id for r in successful]
    assert {r.run_id for r in successful} == every
    assert [j.job_id for j in jobs] == [j.job_id for j in sim.jobs]
    # 123 runs: pages of 50, 50 and 23 when clamped; of 100 and 23 otherwise.
    assert sim.stats.requests["list_runs"] == (3 if on else 2)
    assert (observed.page_size, observed.page_size_asked) == ((50 if on else None), 100)


def test_runs_command_lists_every_run_through_clamped_pages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = clamping(123, True)
    job = sim.job_named("Daily pageviews")
    expected = newest_first(sim, job.job_id)
    client_id, client_secret, project_id = sim.credentials
    monkeypatch.chdir(tmp_path)  # no stray csload.toml
    with sim.start_in_thread() as handle:
        env = {"CONTENTSQUARE_CLIENT_ID": client_id,
               "CONTENTSQUARE_CLIENT_SECRET": client_secret,
               "CONTENTSQUARE_PROJECT_ID": str(project_id),
               "CONTENTSQUARE_AUTH_URL": handle.base_url}
        as_json = CliRunner().invoke(main, ["runs", str(job.job_id), "--json"], env=env,
                                     catch_exceptions=False)
        table = CliRunner().invoke(main, ["runs", str(job.job_id)], env=env,
                                   catch_exceptions=False)
    assert as_json.exit_code == 0, as_json.output
    assert [r["jobRunId"] for r in orjson.loads(as_json.stdout)] == expected
    assert table.exit_code == 0, table.output
    assert f"{len(expected)} run(s) of job {job.job_id}, times in UTC" in table.stdout
    assert all(str(run_id) in table.stdout for run_id in expected)


# -- 7. the over-limit answer -------------------------------------------------------------------


@pytest.mark.parametrize("clickhouse", [False, True], ids=["429", "400-no-retry-after"])
async def test_over_limit_answer_is_retried_and_succeeds(
    simulator: Simulator, sim_url: str, clickhouse: bool
) -> None:
    if clickhouse:
        simulator.variants.over_limit_status = 400
        simulator.variants.over_limit_code = "TOO_MANY_CONCURRENT_REQUESTS"
        simulator.variants.over_limit_retry_after = False
    simulator.config.max_concurrent_api = 1
    job = simulator.job_named("Daily sessions")
    delays: list[float] = []
    first_done = anyio.Event()

    async def sleep(delay: float) -> None:
        # The refused request waits until the one the server holds has finished: its retry
        # is then admitted, without any timing.
        delays.append(delay)
        simulator.resume_api()
        await first_done.wait()

    settings = settings_for(simulator, sim_url, api_concurrency=2, max_attempts=3)
    async with ExportClient(settings, sleep=sleep) as client:
        await client.get_job(job.job_id)  # the token first: it counts against the limit
        simulator.pause_api()
        found = []

        async def first() -> None:
            found.append(await client.get_job(job.job_id))
            first_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            with anyio.fail_after(30):
                await simulator.wait_api_held(1)
            found.append(await client.get_job(job.job_id))
        observed = client.observed
    assert [j.job_id for j in found] == [job.job_id, job.job_id]
    status = 400 if clickhouse else 429
    assert simulator.stats.statuses_by_kind[("get_job", status)] == 1
    assert simulator.stats.concurrency_rejections == 1
    assert len(delays) == 1
    if clickhouse:
        assert 0 <= delays[0] <= 0.5  # backoff: the first step is at most base_delay
    else:
        assert delays == [1.0]  # the server's Retry-After
    assert observed.over_limit_answers == 1
    assert observed.over_limit_retry_after is (not clickhouse)


@pytest.mark.parametrize(("status", "code", "message"), [
    (429, None, ""),
    (400, "TOO_MANY_CONCURRENT_REQUESTS", ""),
    (400, "RATE_LIMIT_EXCEEDED", "slow down"),
    (403, "RateLimited", ""),
    (400, None, "Too many concurrent requests, at most 10 at once"),
    (400, "LIMIT", "Request limit reached"),
    (422, None, "You exceeded the limit of 10 concurrent requests"),
])
def test_every_over_limit_answer_is_retried(status: int, code: str | None, message: str) -> None:
    assert is_over_limit(status, code, message)
    for kind in RequestKind:
        assert classify(status, code, message=message, kind=kind) is Verdict.RETRY


@pytest.mark.parametrize(("status", "code", "message"), [
    (400, "INVALID_PARAMETER", "limit must be a positive integer, got '0'"),
    (400, "INVALID_PARAMETER", "frequency.dateRange covers 9 whole days: at most 7 days apart"),
    (404, "NOT_FOUND", "Job 7 not found"),
    (409, "CONFLICT", "concurrent modification of job 7"),
    (500, "TOO_MANY_REQUESTS", ""),  # a 5xx is retried anyway, but it is not "over the limit"
])
def test_other_answers_are_not_over_limit(status: int, code: str, message: str) -> None:
    assert not is_over_limit(status, code, message)
    if status < 500:
        assert classify(status, code, message=message) is Verdict.FATAL


# -- 8. query and body formats ------------------------------------------------------------------


@pytest.mark.parametrize("timestamps_only", [False, True])
async def test_dynamic_var_keys_are_asked_with_full_timestamps(
    sim_client: ExportClient, simulator: Simulator, timestamps_only: bool
) -> None:
    simulator.variants.dynamic_var_keys_timestamps_only = timestamps_only
    simulator.stats.keep_requests = True
    start = simulator.runs(simulator.job_named("Daily pageviews").job_id)[0].start.date()
    keys = await sim_client.dynamic_var_keys(start, start + timedelta(days=2))
    truth = dynamic_var_keys(start, start + timedelta(days=1))
    assert [(k.key, k.type) for k in keys] == [tuple(pair) for pair in truth]
    (seen,) = [s for s in simulator.stats.seen if s.kind == "dynamic_var_keys"]
    assert f"from={start:%Y-%m-%d}T00:00:00.000Z" in seen.query.replace("%3A", ":")


@pytest.mark.parametrize("as_string", [False, True])
async def test_custom_var_positions_read_back_as_integers(
    sim_client: ExportClient, simulator: Simulator, as_string: bool
) -> None:
    simulator.variants.custom_var_position_as_string = as_string
    views = simulator.job_named("Daily pageviews")
    truth = [(f.column_name, f.custom_var_position) for f in views.fields
             if f.custom_var_position is not None]
    job = await sim_client.get_job(views.job_id)
    assert [(f.column_name, f.custom_var_position) for f in job.fields
            if f.custom_var_position is not None] == truth
    listed = {j.job_id: j for j in await sim_client.list_jobs()}
    assert listed[views.job_id].fields == job.fields


# -- 9. the create answer, successful runs without jobId ----------------------------------------


@pytest.mark.parametrize(("shape", "string_ids"),
                         [("job", False), ("id_object", False), ("bare_id", False),
                          ("bare_id", True)])
async def test_create_job_whatever_the_answer(
    sim_client: ExportClient, simulator: Simulator, shape: str, string_ids: bool
) -> None:
    simulator.variants.create_response = shape
    simulator.variants.string_ids = string_ids
    simulator.variants.custom_var_position_as_string = True
    start = simulator.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    spec = JobSpec(name="Backfill views", format="CSV", scope="views", frequency="once",
                   fields=(JobField("session_id"), JobField("url", alias_name="page"),
                           JobField("custom_var", custom_var_position=3)),
                   date_from=start - timedelta(days=3), date_to=start - timedelta(days=1))
    before = {j.job_id for j in simulator.jobs}
    job = await sim_client.create_job(spec)
    (new,) = {j.job_id for j in simulator.jobs} - before
    assert job == await sim_client.get_job(new)
    assert (job.job_id, job.name, job.scope, job.format, job.frequency) == (
        new, "Backfill views", "views", "CSV", "once")
    assert (job.date_from, job.date_to) == (spec.date_from, spec.date_to)
    assert [f.column_name for f in job.fields] == ["session_id", "page", "custom_var_3"]
    assert simulator.stats.requests["create_job"] == 1
    # Read back only when the answer was not the whole job (and once more above).
    assert simulator.stats.requests["get_job"] == (1 if shape == "job" else 2)


@pytest.mark.parametrize("without_job_id", [False, True])
async def test_successful_runs_know_their_job(
    sim_client: ExportClient, simulator: Simulator, without_job_id: bool
) -> None:
    simulator.variants.successful_runs_without_job_id = without_job_id
    simulator.rerun(simulator.job_named("Daily sessions").job_id,
                    simulator.runs(simulator.job_named("Daily sessions").job_id)[0].start.date())
    truth = {r.run_id: r.job_id for j in simulator.jobs for r in simulator.runs(j.job_id)
             if simulator.run_state(r.run_id) == "SUCCESS"}
    runs = await sim_client.successful_runs()
    assert {r.run_id: r.job_id for r in runs} == truth
    assert len(runs) == len(truth)
    # The lookup costs requests only when jobId is missing.
    assert (simulator.stats.requests["list_runs"] > 0) is without_job_id


async def test_a_successful_run_no_job_lists_is_an_error(
    sim_client: ExportClient, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator.variants.successful_runs_without_job_id = True
    legacy = simulator.job_named("Legacy sessions (CSV)")
    real_list_jobs = sim_client.list_jobs

    async def without_legacy() -> list[Job]:
        return [j for j in await real_list_jobs() if j.job_id != legacy.job_id]

    monkeypatch.setattr(sim_client, "list_jobs", without_legacy)
    lost = [r.run_id for r in simulator.runs(legacy.job_id)
            if simulator.run_state(r.run_id) == "SUCCESS"]
    with pytest.raises(ApiError, match=f"run\\(s\\) {lost[0]} name no job"):
        await sim_client.successful_runs()


async def test_every_endpoint_against_the_clickhouse_preset(
    sim_client: ExportClient, simulator: Simulator
) -> None:
    simulator.config.variants = Variants.clickhouse()
    sessions = simulator.job_named("Daily sessions")
    assert [j.job_id for j in await sim_client.list_jobs()] == [j.job_id for j in simulator.jobs]
    runs = await sim_client.list_runs(sessions.job_id)
    assert [r.run_id for r in runs] == newest_first(simulator, sessions.job_id)
    successful = await sim_client.successful_runs()
    assert {r.run_id for r in runs} <= {r.run_id for r in successful
                                        if r.job_id == sessions.job_id}
    detail = await sim_client.get_run(sessions.job_id, runs[0].run_id)
    assert detail.parts
    start = runs[-1].start_date
    assert start is not None
    assert await sim_client.dynamic_var_keys(start.date(), start.date() + timedelta(days=1))
    views = await sim_client.get_job(simulator.job_named("Daily pageviews").job_id)
    assert {f.custom_var_position for f in views.fields} >= {1, 3}


# -- 10. proxies --------------------------------------------------------------------------------


def write_netrc(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ~/.netrc with credentials for 127.0.0.1 and the test host: csload must not read it."""
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n"
                     "machine csload-sim.invalid login netrc-user password netrc-pass\n"
                     "default login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))


def no_netrc_credentials(simulator: Simulator, proxy: ForwardingProxy) -> None:
    assert all("proxy-authorization" not in s.headers for s in proxy.seen)
    for seen in simulator.stats.seen:
        headers = {name.lower(): value for name, value in seen.headers}
        assert not headers.get("authorization", "").startswith("Basic"), seen
    assert simulator.stats.storage_with_authorization == 0


@pytest.mark.parametrize("names", [("HTTP_PROXY", "NO_PROXY"), ("http_proxy", "no_proxy")])
async def test_a_sync_goes_through_the_http_proxy(
    simulator: Simulator, sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    names: tuple[str, str]
) -> None:
    write_netrc(tmp_path, monkeypatch)
    simulator.stats.keep_requests = True
    views = simulator.job_named("Daily pageviews")
    async with ForwardingProxy() as proxy:
        monkeypatch.setenv(names[0], proxy.url)
        report = await sync_async(settings_for(simulator, sim_url), db=tmp_path / "db.duckdb",
                                  jobs=[views.job_id])
    assert len(report.loaded) == len(simulator.runs(views.job_id)) == 3
    stats = simulator.stats
    assert stats.storage_requests > 0 and stats.api_requests > 0
    # Every request the simulator got came through the proxy, and nothing else did.
    assert len(proxy.forwarded) == stats.api_requests + stats.storage_requests
    assert proxy.tunnels == []
    targets = [s.target for s in proxy.forwarded]
    assert all(t.startswith(sim_url + "/") for t in targets)
    assert sum("/storage/" in t for t in targets) == stats.storage_requests
    assert f"{sim_url}/v1/oauth/token" in targets
    no_netrc_credentials(simulator, proxy)


@pytest.mark.parametrize("names", [("HTTP_PROXY", "NO_PROXY"), ("http_proxy", "no_proxy")])
async def test_no_proxy_hosts_are_reached_directly(
    simulator: Simulator, sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    names: tuple[str, str]
) -> None:
    views = simulator.job_named("Daily pageviews")
    async with ForwardingProxy() as proxy:
        monkeypatch.setenv(names[0], proxy.url)
        monkeypatch.setenv(names[1], "example.test, 127.0.0.1")
        report = await sync_async(settings_for(simulator, sim_url), db=tmp_path / "db.duckdb",
                                  jobs=[views.job_id])
    assert len(report.loaded) == 3
    assert simulator.stats.storage_requests > 0
    assert proxy.seen == []


async def test_https_goes_through_a_connect_tunnel(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: FakeSleep
) -> None:
    write_netrc(tmp_path, monkeypatch)
    simulator.stats.keep_requests = True
    host = "csload-sim.invalid"  # only the proxy knows where it is: no direct way there
    server_tls, client_tls = tls_pair(tmp_path, host)
    run = simulator.runs(simulator.job_named("Daily sessions").job_id)[-1]
    async with ForwardingProxy(resolve={host: "127.0.0.1"}) as proxy, \
            serve_tls(simulator, server_tls, host) as url:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls),
                                        cookie_jar=aiohttp.DummyCookieJar())
        settings = settings_for(simulator, url)
        async with session, ExportClient(settings, session=session, sleep=sleeper) as c:
            detail = await c.get_run(run.job_id, run.run_id)
            assert detail.parts
            result = await StorageHost(c).download_part(
                detail.parts[0], tmp_path / "p1", job_id=run.job_id, run_id=run.run_id)
            assert (await StorageHost(c).probe_part(detail.parts[0])).size == result.bytes_written
            assert c.observed.proxy == proxy.url
    assert simulator.stats.storage_requests == 2 and simulator.stats.api_requests == 2
    assert proxy.forwarded == []
    assert {s.target for s in proxy.tunnels} == {f"{host}:{url.rsplit(':', 1)[1]}"}
    no_netrc_credentials(simulator, proxy)


async def test_proxy_credentials_are_sent_but_never_shown(
    simulator: Simulator, sim_url: str, sleeper: FakeSleep, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="csload")
    async with ForwardingProxy() as proxy:
        with_credentials = proxy.url.replace("http://", "http://proxy-user:s3cr%40t@")
        monkeypatch.setenv("HTTP_PROXY", with_credentials)
        async with ExportClient(settings_for(simulator, sim_url), sleep=sleeper) as client:
            await client.list_jobs()
            observed = client.observed
    expected = "Basic " + base64.b64encode(b"proxy-user:s3cr@t").decode()
    assert [s.headers.get("proxy-authorization") for s in proxy.seen] == \
        [expected] * len(proxy.seen)
    assert observed.proxy == proxy.url
    assert "s3cr" not in caplog.text and "proxy-user" not in caplog.text
    assert proxy.url in caplog.text  # the proxy is logged, without its credentials


def test_proxy_choice_per_url() -> None:
    proxies = Proxies({"http": "proxy.corp:3128", "https": "http://u:p@secure.corp:8443",
                       "no": ".internal.example, 10.0.0.1"})
    assert proxies.for_url("http://api.example.com/v1") == "http://proxy.corp:3128"
    assert proxies.for_url("https://api.example.com/v1") == "http://u:p@secure.corp:8443"
    assert proxies.for_url("https://s3.internal.example/part?X-Amz-Signature=x") is None
    assert proxies.for_url("http://10.0.0.1:8080/") is None
    assert Proxies({"https": "http://p:1"}).for_url("http://api.example.com/") is None
    assert Proxies({"https": "http://p:1", "no": "*"}).for_url("https://a.example/") is None
    with pytest.raises(ConfigError, match="socks5") as info:
        Proxies({"https": "socks5://u:secret@p:1080"}).for_url("https://a.example/")
    assert "secret" not in str(info.value)


async def test_a_session_that_trusts_the_environment_is_refused(
    simulator: Simulator
) -> None:
    async with aiohttp.ClientSession(trust_env=True) as session:
        with pytest.raises(ConfigError, match="netrc"):
            ExportClient(settings_for(simulator, "http://127.0.0.1:1"), session=session)


# -- observations -------------------------------------------------------------------------------


async def test_observations_of_a_plain_session(
    sim_client: ExportClient, simulator: Simulator
) -> None:
    observed = sim_client.observed
    assert (observed.page_size, observed.over_limit_answers, observed.proxy,
            observed.server_date) == (None, 0, None, None)
    before = time.time()
    await sim_client.list_jobs()
    after = time.time()
    assert observed is sim_client.observed  # live: the same object, updated in place
    assert observed.server_date is not None
    assert parsedate_to_datetime(observed.server_date).tzinfo is not None
    assert observed.server_date_at is not None and before <= observed.server_date_at <= after
    assert observed.over_limit_retry_after is None
