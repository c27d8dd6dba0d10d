"""Every fault knob, observed over real HTTP."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import aiohttp
import pytest

from csload.simulator import Faults, SimConfig, Simulator
from tests.support.simhttp import Api, assert_s3_error


async def part(api: Any, simulator: Simulator) -> tuple[str, bytes]:
    """The URL of a part and the bytes storage serves for it when nothing goes wrong."""
    job = simulator.job_named("Daily pageviews")
    run = simulator.runs(job.job_id)[-1]
    detail = await api.run_detail(job.job_id, run.run_id)
    return detail["files"][0]["url"], simulator.part_bodies(job.job_id, run.run_id,
                                                            compressed=True)[0]


async def test_api_429_rate(api: Any, simulator: Simulator) -> None:
    simulator.faults.api_429_rate = 1.0
    simulator.faults.retry_after = 3
    reply = await api.get("/v1/exports")
    assert reply.status == 429
    assert reply.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert reply.headers["Retry-After"] == "3"
    assert simulator.stats.faults["api_429"] == 1
    simulator.faults.api_429_rate = 0.0
    assert (await api.get("/v1/exports")).status == 200


async def test_api_5xx_rate(api: Any, simulator: Simulator) -> None:
    simulator.faults.api_5xx_rate = 1.0
    statuses = {(await api.get("/v1/exports")).status for _ in range(12)}
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1


async def test_fail_next_n(api: Any, simulator: Simulator) -> None:
    simulator.faults.api_fail_next = 2
    simulator.faults.api_fail_status = 502
    assert [(await api.get("/v1/custom-vars")).status for _ in range(3)] == [502, 502, 200]
    simulator.faults.api_fail_next = 1
    simulator.faults.api_fail_status = 500
    reply = await api.get("/v1/custom-vars")
    assert reply.status == 500 and reply.json()["success"] is False


async def test_fail_next_counts_the_token_endpoint_unless_told(api: Any,
                                                               simulator: Simulator) -> None:
    simulator.faults.api_fail_next = 1
    assert (await api.request_token()).status == 503
    simulator.faults.api_fail_next = 1
    simulator.faults.api_faults_on_token = False
    assert (await api.request_token()).status == 200
    assert (await api.get("/v1/exports")).status == 503


async def test_random_faults_are_reproducible_with_the_seed(sim_config: SimConfig) -> None:
    async def statuses() -> list[int]:
        sim = Simulator(sim_config)
        sim.faults.api_5xx_rate = 0.3
        sim.faults.api_429_rate = 0.2
        async with sim.serve() as url, aiohttp.ClientSession() as session:
            api = Api(session, url, sim)
            sim.faults.api_faults_on_token = False
            await api.login()
            return [(await api.get("/v1/custom-vars")).status for _ in range(30)]

    first = await statuses()
    assert len(set(first)) > 2
    assert await statuses() == first


async def test_storage_slowdown(api: Any, simulator: Simulator) -> None:
    url, _ = await part(api, simulator)
    simulator.faults.storage_503_next = 2
    simulator.faults.retry_after = 4
    for _ in range(2):
        reply = await api.download(url)
        assert_s3_error(reply, 503, "SlowDown")
        assert reply.headers["Retry-After"] == "4"
    assert (await api.download(url)).status == 200
    simulator.faults.storage_503_rate = 1.0
    assert (await api.download(url)).status == 503
    assert simulator.stats.faults["slowdown"] == 3


async def test_connection_cut_mid_body(api: Any, simulator: Simulator) -> None:
    url, body = await part(api, simulator)
    simulator.faults.storage_cut_next = 1
    async with api.session.get(url) as response:
        assert response.status == 200
        assert response.content_length == len(body)
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert simulator.stats.faults["cut"] == 1
    assert (await api.download(url)).body == body


async def test_truncated_gzip(api: Any, simulator: Simulator) -> None:
    url, body = await part(api, simulator)
    simulator.faults.storage_truncate_next = 1
    reply = await api.download(url)
    assert reply.status == 200
    assert int(reply.headers["Content-Length"]) == len(reply.body) < len(body)
    assert body.startswith(reply.body)
    with pytest.raises((EOFError, zlib.error)):
        gzip.decompress(reply.body)
    assert (await api.download(url)).body == body


@pytest.mark.parametrize("knob", ["storage_cut_rate", "storage_truncate_rate"])
async def test_storage_fault_rates(api: Any, simulator: Simulator, knob: str) -> None:
    url, body = await part(api, simulator)
    setattr(simulator.faults, knob, 1.0)
    try:
        reply = await api.download(url)
        assert reply.body != body
    except aiohttp.ClientPayloadError:
        assert knob == "storage_cut_rate"


async def test_latency_and_bandwidth(api: Any, simulator: Simulator) -> None:
    url, body = await part(api, simulator)
    simulator.faults.latency = 0.01
    simulator.faults.bandwidth = len(body) * 10
    assert (await api.get("/v1/exports")).status == 200
    assert (await api.download(url)).body == body
    assert simulator.stats.delayed_responses == 2
    assert simulator.stats.paced_chunks >= 2


def test_reset_turns_every_fault_off() -> None:
    faults = Faults(api_429_rate=1.0, api_fail_next=3, storage_cut_next=1, latency=2.0,
                    bandwidth=10)
    faults.reset()
    assert faults.take_api_fault(token_endpoint=False) is None
    assert faults.take_storage_fault() is None
    assert faults.latency == 0.0 and faults.bandwidth is None
