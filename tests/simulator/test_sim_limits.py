"""The 10-concurrent-requests limit of the API (token endpoint included, storage excluded).

Concurrency is made observable without timing: pause_api() holds admitted requests, the test
waits until the simulator reports them held, then checks what one more request gets.
"""

from __future__ import annotations

import asyncio
from typing import Any

from csload.simulator import Simulator


async def test_eleventh_concurrent_request_gets_429(api: Any, simulator: Simulator) -> None:
    url = await _part_url(api, simulator)
    simulator.stats.reset()
    simulator.pause_api()
    held = [asyncio.create_task(api.get("/v1/exports")) for _ in range(10)]
    async with asyncio.timeout(30):
        await simulator.wait_api_held(10)
    assert simulator.stats.api_in_flight == 10

    refused = await api.get("/v1/custom-vars")
    assert refused.status == 429
    assert refused.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert refused.headers["Retry-After"] == "1"
    token = await api.request_token()
    assert token.status == 429, "the token endpoint counts against the limit"
    assert (await api.download(url)).status == 200, "storage does not"

    simulator.resume_api()
    replies = await asyncio.gather(*held)
    assert [r.status for r in replies] == [200] * 10
    stats = simulator.stats
    assert stats.max_api_in_flight == 11
    assert stats.concurrency_rejections == 2
    assert stats.api_in_flight == 0
    assert stats.statuses_by_kind[("list_jobs", 200)] == 10
    assert stats.statuses_by_kind[("custom_vars", 429)] == 1
    assert stats.statuses_by_kind[("token", 429)] == 1
    assert (await api.get("/v1/custom-vars")).status == 200


async def test_limit_and_retry_after_are_configurable(api: Any, simulator: Simulator) -> None:
    simulator.config.max_concurrent_api = 2
    simulator.config.concurrency_retry_after = 7
    simulator.pause_api()
    held = [asyncio.create_task(api.get("/v1/exports")) for _ in range(2)]
    async with asyncio.timeout(30):
        await simulator.wait_api_held(2)
    refused = await api.get("/v1/exports")
    assert refused.status == 429 and refused.headers["Retry-After"] == "7"
    simulator.resume_api()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]


async def test_sequential_requests_never_overlap(api: Any, simulator: Simulator) -> None:
    simulator.stats.reset()
    for _ in range(5):
        assert (await api.get("/v1/exports")).status == 200
    assert simulator.stats.max_api_in_flight == 1
    assert simulator.stats.api_requests == 5


async def _part_url(api: Any, simulator: Simulator) -> str:
    job = simulator.job_named("Daily sessions")
    run = simulator.runs(job.job_id)[-1]
    return str((await api.run_detail(job.job_id, run.run_id))["files"][0]["url"])
