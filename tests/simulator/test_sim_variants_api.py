"""The simulator serves each API variant of contract section 9 (points 6-9), and the contract
when the switch is off. Raw HTTP (simhttp.Api): these tests check the simulator, not csload."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from csload.simulator import Simulator
from csload.simulator.config import Variants
from csload.simulator.variables import dynamic_var_keys
from tests.support.simhttp import Api

DAY = "2026-11-22"
SESSIONS_FIELDS = [{"fieldName": "session_id"},
                   {"fieldName": "custom_var", "customVarPosition": 4, "aliasName": "plan"}]


def _job_body(name: str = "Created") -> dict[str, Any]:
    return {"name": name, "format": "JSONL", "scope": "sessions",
            "frequency": {"value": "daily"}, "fields": [dict(f) for f in SESSIONS_FIELDS]}


def _positions(job: dict[str, Any]) -> list[Any]:
    return [f["customVarPosition"] for f in job["fields"] if "customVarPosition" in f]


# -- 6. pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize(("page_size", "served"), [(None, [3, 0]), (2, [2, 1])])
async def test_page_size_clamps_the_limit(
    api: Api, simulator: Simulator, page_size: int | None, served: list[int]
) -> None:
    simulator.variants.page_size = page_size
    path = f"/v1/exports/{simulator.job_named('Daily sessions').job_id}/runs"
    pages = [(await api.get(path, {"page": p, "limit": 100, "order": "ASC"})).payload()
             for p in (1, 2)]
    assert [len(p) for p in pages] == served
    ids = [r["jobRunId"] for page in pages for r in page]
    assert ids == [r.run_id for r in simulator.runs(simulator.job_named("Daily sessions").job_id)]
    # No limit: the default 20, clamped too; jobs are clamped as well.
    assert len((await api.get(path)).payload()) == (page_size or 3)
    assert len((await api.get("/v1/exports", {"limit": 100})).payload()) == (page_size or 3)


@pytest.mark.parametrize("oldest_first", [False, True])
async def test_default_order_of_runs(api: Api, simulator: Simulator, oldest_first: bool) -> None:
    simulator.variants.runs_oldest_first_by_default = oldest_first
    job = simulator.job_named("Daily pageviews")
    ascending = [r.run_id for r in simulator.runs(job.job_id)]
    path = f"/v1/exports/{job.job_id}/runs"
    by_default = [r["jobRunId"] for r in (await api.get(path)).payload()]
    assert by_default == (ascending if oldest_first else ascending[::-1])
    # An explicit order is obeyed either way.
    for order, expected in (("ASC", ascending), ("DESC", ascending[::-1])):
        assert [r["jobRunId"] for r in (await api.get(path, {"order": order})).payload()] \
            == expected
    successful = [r["jobRunId"] for r in (await api.get("/v1/exports/successful-runs")).payload()]
    starts = [simulator.run(r).start for r in successful]
    assert starts == sorted(starts, reverse=not oldest_first)


# -- 7. the over-limit answer -------------------------------------------------------------------


@pytest.mark.parametrize("clickhouse", [False, True], ids=["contract", "clickhouse"])
async def test_over_limit_answer(api: Api, simulator: Simulator, clickhouse: bool) -> None:
    if clickhouse:
        simulator.config.variants = Variants.clickhouse()
    simulator.config.max_concurrent_api = 2
    simulator.pause_api()
    held = [asyncio.create_task(api.get("/v1/exports")) for _ in range(2)]
    async with asyncio.timeout(30):
        await simulator.wait_api_held(2)
    refused = await api.get("/v1/custom-vars")
    simulator.resume_api()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]

    body = refused.json()
    assert "concurrent requests" in body["errorMessage"]
    assert body["success"] is False
    if clickhouse:
        assert refused.status == 400
        assert body["errorCode"] == "TOO_MANY_CONCURRENT_REQUESTS"
        assert "Retry-After" not in refused.headers
    else:
        assert refused.status == 429
        assert body["errorCode"] == "TOO_MANY_REQUESTS"
        assert refused.headers["Retry-After"] == "1"
    assert simulator.stats.concurrency_rejections == 1


async def test_over_limit_switches_are_independent(api: Api, simulator: Simulator) -> None:
    simulator.variants.over_limit_status = 503
    simulator.variants.over_limit_code = "RATE_LIMITED"
    simulator.config.max_concurrent_api = 1
    simulator.config.concurrency_retry_after = 3
    simulator.pause_api()
    held = asyncio.create_task(api.get("/v1/exports"))
    async with asyncio.timeout(30):
        await simulator.wait_api_held(1)
    refused = await api.request_token()
    simulator.resume_api()
    assert (await held).status == 200
    assert (refused.status, refused.json()["errorCode"]) == (503, "RATE_LIMITED")
    assert refused.headers["Retry-After"] == "3"


# -- 8. query and body formats ------------------------------------------------------------------


@pytest.mark.parametrize("timestamps_only", [False, True])
async def test_dynamic_var_keys_bare_dates(
    api: Api, simulator: Simulator, timestamps_only: bool
) -> None:
    simulator.variants.dynamic_var_keys_timestamps_only = timestamps_only
    start = simulator.runs(simulator.job_named("Daily pageviews").job_id)[0].start
    end = start + timedelta(days=2)
    truth = [{"key": k, "type": t}
             for k, t in dynamic_var_keys(start.date(), (end - timedelta(days=1)).date())]
    full = await api.get("/v1/dynamic-var-keys", {"from": f"{start:%Y-%m-%d}T00:00:00.000Z",
                                                   "to": f"{end:%Y-%m-%d}T00:00:00.000Z"})
    assert full.payload() == truth
    bare = await api.get("/v1/dynamic-var-keys", {"from": f"{start:%Y-%m-%d}",
                                                   "to": f"{end:%Y-%m-%d}T00:00:00.000Z"})
    if timestamps_only:
        assert bare.status == 400
        assert bare.json()["errorCode"] == "INVALID_PARAMETER"
        assert "from must be a full ISO 8601 timestamp" in bare.json()["errorMessage"]
    else:
        assert bare.payload() == truth


@pytest.mark.parametrize("as_string", [False, True])
async def test_custom_var_position_read_back(
    api: Api, simulator: Simulator, as_string: bool
) -> None:
    simulator.variants.custom_var_position_as_string = as_string
    views = simulator.job_named("Daily pageviews")
    truth = [f.custom_var_position for f in views.fields if f.custom_var_position is not None]
    expected = [str(p) for p in truth] if as_string else truth

    listed = {j["jobId"]: j for j in (await api.get("/v1/exports")).payload()}
    assert _positions(listed[views.job_id]) == expected
    assert _positions((await api.get(f"/v1/exports/{views.job_id}")).payload()) == expected
    created = (await api.post("/v1/exports", _job_body())).payload()
    assert _positions(created) == (["4"] if as_string else [4])
    # What is stored is the integer: a string sent in is accepted as well.
    body = _job_body("String position")
    body["fields"][1] = {**body["fields"][1], "customVarPosition": "5"}
    again = (await api.post("/v1/exports", body)).payload()
    assert _positions(again) == (["5"] if as_string else [5])


# -- 9. the create answer, successful runs without jobId ----------------------------------------


@pytest.mark.parametrize(("shape", "string_ids"),
                         [("job", False), ("id_object", False), ("bare_id", False),
                          ("bare_id", True)])
async def test_create_response(
    api: Api, simulator: Simulator, shape: str, string_ids: bool
) -> None:
    simulator.variants.create_response = shape
    simulator.variants.string_ids = string_ids
    before = {j.job_id for j in simulator.jobs}
    reply = await api.post("/v1/exports", _job_body())
    assert reply.status == 200
    (new,) = {j.job_id for j in simulator.jobs} - before
    payload = reply.payload()
    if shape == "job":
        assert payload["jobId"] == new and payload["name"] == "Created"
        assert payload["fields"][1]["aliasName"] == "plan"
    elif shape == "id_object":
        assert payload == {"jobId": new}
    else:
        assert payload == (str(new) if string_ids else new)
    shown = (await api.get(f"/v1/exports/{new}")).payload()
    assert shown["name"] == "Created"


async def test_unknown_create_response_is_a_server_error(
    api: Api, simulator: Simulator
) -> None:
    simulator.variants.create_response = "mystery"
    before = len(simulator.jobs)
    reply = await api.post("/v1/exports", _job_body())
    assert reply.status == 500 and "mystery" in reply.json()["errorMessage"]
    assert len(simulator.jobs) == before


@pytest.mark.parametrize("without_job_id", [False, True])
async def test_successful_runs_without_job_id(
    api: Api, simulator: Simulator, without_job_id: bool
) -> None:
    simulator.variants.successful_runs_without_job_id = without_job_id
    items = (await api.get("/v1/exports/successful-runs", {"limit": 100})).payload()
    truth = {r.run_id: r.job_id for job in simulator.jobs for r in simulator.runs(job.job_id)
             if simulator.run_state(r.run_id) == "SUCCESS"}
    assert {item["jobRunId"] for item in items} == set(truth)
    if without_job_id:
        assert all("jobId" not in item for item in items)
    else:
        assert {item["jobRunId"]: item["jobId"] for item in items} == truth
    # The runs of one job still name it.
    job = simulator.job_named("Daily sessions")
    runs = (await api.get(f"/v1/exports/{job.job_id}/runs")).payload()
    assert {r["jobId"] for r in runs} == {job.job_id}


def test_clickhouse_preset_turns_on_every_api_variant() -> None:
    preset = Variants.clickhouse()
    assert preset.page_size == 50
    assert preset.runs_oldest_first_by_default
    assert (preset.over_limit_status, preset.over_limit_retry_after,
            preset.over_limit_code) == (400, False, "TOO_MANY_CONCURRENT_REQUESTS")
    assert preset.dynamic_var_keys_timestamps_only and preset.custom_var_position_as_string
    assert preset.create_response == "id_object" and preset.successful_runs_without_job_id
