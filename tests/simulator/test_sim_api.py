"""The API endpoints: shapes, pagination, ordering, filters and the variant shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from csload.api.catalog import CustomVar, DynamicVarKey, Field
from csload.api.models import Job, Run
from csload.api.schemas import load_schema
from csload.simulator import SimConfig, Simulator
from tests.support.simhttp import Api

SIM_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def test_seeded_jobs_and_runs(api: Any, simulator: Simulator) -> None:
    jobs = [Job.from_api(j) for j in (await api.get("/v1/exports")).payload()]
    by_name = {j.name: j for j in jobs}
    assert set(by_name) == {"Daily sessions", "Daily pageviews", "Legacy sessions (CSV)"}
    sessions, views = by_name["Daily sessions"], by_name["Daily pageviews"]
    assert (sessions.format, sessions.scope, sessions.frequency) == ("JSONL", "sessions", "daily")
    assert (views.format, views.scope, views.frequency) == ("CSV", "views", "daily")
    assert by_name["Legacy sessions (CSV)"].state == "SUSPENDED"
    assert {f.column_name for f in sessions.fields} >= {"visitor_id", "session_start",
                                                        "custom_var_2", "session_id"}
    assert [f.field_name for f in views.fields].count("custom_var") == 2
    assert [f.field_name for f in views.fields].count("dynamic_var") == 1

    for job in (sessions, views):
        runs = [Run.from_api(r) for r in
                (await api.get(f"/v1/exports/{job.job_id}/runs", {"order": "ASC"})).payload()]
        assert [r.state for r in runs] == ["SUCCESS"] * 3
        assert [r.start_date.day for r in runs if r.start_date] == [22, 23, 24]
        for run in runs:
            assert run.start_date and run.end_date and run.created_at and run.finished_at
            assert (run.end_date - run.start_date).days == 1
            assert run.created_at.date() == run.end_date.date()
            assert run.created_at.hour == 4
            assert run.created_at < run.finished_at < SIM_START


async def test_run_detail_lists_signed_part_urls(api: Any, simulator: Simulator) -> None:
    job = simulator.job_named("Daily pageviews")
    run = simulator.runs(job.job_id)[-1]
    detail = Run.from_api(await api.run_detail(job.job_id, run.run_id))
    assert detail.parts is not None and len(detail.parts) >= 2
    assert [p.part_id for p in detail.parts] == list(range(1, len(detail.parts) + 1))
    for part in detail.parts:
        assert part.url.startswith(api.base_url + "/storage/")
        assert "Signature=" in part.url and "Expires=" in part.url
        assert detail.finished_at is not None
        assert part.expiration_date == detail.finished_at + timedelta(days=7)


async def test_endpoint_from_the_token_is_where_the_api_lives(api: Any) -> None:
    assert api.endpoint == api.base_url + "/api"
    async with api.session.get(api.base_url + "/v1/exports",
                               headers={"Authorization": f"Bearer {api.token}"}) as r:
        assert r.status == 404


async def test_pagination_is_one_based_without_totals(api: Any, simulator: Simulator) -> None:
    job = simulator.job_named("Daily sessions")
    path = f"/v1/exports/{job.job_id}/runs"
    everything = (await api.get(path)).payload()
    assert isinstance(everything, list) and len(everything) == 3
    pages = [(await api.get(path, {"page": p, "limit": 2})).payload() for p in (1, 2, 3)]
    assert [len(p) for p in pages] == [2, 1, 0]
    assert pages[0] + pages[1] == everything


@pytest.mark.parametrize("params", [{"page": 0}, {"page": "x"}, {"limit": 0},
                                    {"limit": -5}, {"order": "UP"}])
async def test_bad_list_parameters_are_refused(api: Any, params: dict[str, Any]) -> None:
    reply = await api.get("/v1/exports/successful-runs", params)
    assert reply.status == 400
    assert reply.json()["errorCode"] == "INVALID_PARAMETER"


async def test_limit_defaults_to_20_and_is_clamped_to_100() -> None:
    sim = Simulator(SimConfig(days=60, sessions_per_day=10, start_time=SIM_START))
    async with sim.serve() as url, aiohttp.ClientSession() as session:
        api = Api(session, url, sim)
        await api.login()
        path = "/v1/exports/successful-runs"
        assert len((await api.get(path)).payload()) == 20
        assert len((await api.get(path, {"limit": 500})).payload()) == 100
        rest = (await api.get(path, {"limit": 500, "page": 2})).payload()
        assert len(rest) == 60 * 2 + 1 - 100
        assert len((await api.get(path, {"limit": 100, "page": 2})).payload()) == len(rest)


async def test_order(api: Any, simulator: Simulator) -> None:
    job = simulator.job_named("Daily pageviews")
    path = f"/v1/exports/{job.job_id}/runs"
    desc = [r["startDate"] for r in (await api.get(path)).payload()]
    asc = [r["startDate"] for r in (await api.get(path, {"order": "ASC"})).payload()]
    assert desc == sorted(desc, reverse=True), "runs default to newest first"
    assert asc == sorted(asc)
    jobs = [j["jobId"] for j in (await api.get("/v1/exports")).payload()]
    assert jobs == sorted(jobs)
    jobs_desc = [j["jobId"] for j in (await api.get("/v1/exports", {"order": "desc"})).payload()]
    assert jobs_desc == sorted(jobs, reverse=True)


@pytest.mark.parametrize(("params", "names"), [
    ({"state": "SUSPENDED"}, {"Legacy sessions (CSV)"}),
    ({"state": "ACTIVE"}, {"Daily sessions", "Daily pageviews"}),
    ({"state": "COMPLETED"}, set()),
    ({"format": "CSV"}, {"Legacy sessions (CSV)", "Daily pageviews"}),
    ({"format": "JSONL"}, {"Daily sessions"}),
    ({"frequency": "daily"}, {"Legacy sessions (CSV)", "Daily sessions", "Daily pageviews"}),
    ({"frequency": "once"}, set()),
    ({"scope": "views"}, {"Daily pageviews"}),
    ({"scope": "sessions", "format": "CSV"}, {"Legacy sessions (CSV)"}),
])
async def test_job_filters(api: Any, params: dict[str, str], names: set[str]) -> None:
    reply = await api.get("/v1/exports", params)
    assert {j["name"] for j in reply.payload()} == names


@pytest.mark.parametrize("params", [{"state": "SLEEPING"}, {"format": "XML"},
                                    {"frequency": "weekly"}, {"scope": "clicks"}])
async def test_unknown_filter_values_are_refused(api: Any, params: dict[str, str]) -> None:
    assert (await api.get("/v1/exports", params)).status == 400


async def test_run_state_filter_and_successful_runs(api: Any, simulator: Simulator) -> None:
    legacy = simulator.job_named("Legacy sessions (CSV)")
    path = f"/v1/exports/{legacy.job_id}/runs"
    assert [r["state"] for r in (await api.get(path, {"state": "FAILURE"})).payload()] == [
        "FAILURE"]
    assert [r["state"] for r in (await api.get(path, {"state": "SUCCESS"})).payload()] == [
        "SUCCESS"]
    assert (await api.get(path, {"state": "RUNNING"})).payload() == []
    failed = (await api.get(path, {"state": "FAILURE"})).payload()[0]
    detail = await api.run_detail(legacy.job_id, failed["jobRunId"])
    assert detail["files"] == []

    runs = [Run.from_api(r) for r in (await api.get("/v1/exports/successful-runs")).payload()]
    assert len(runs) == 7 and all(r.state == "SUCCESS" for r in runs)
    assert {r.job_id for r in runs} == {j.job_id for j in simulator.jobs}


async def test_exportable_fields_are_the_schema(api: Any) -> None:
    for scope in ("sessions", "views"):
        fields = [Field.from_api(f)
                  for f in (await api.get("/v1/exportable-fields", {"scope": scope})).payload()]
        schema = load_schema(scope)
        assert [f.name for f in fields] == list(schema.names)
        assert [f.type for f in fields] == [s.source_type for s in schema.fields]
    assert (await api.get("/v1/exportable-fields")).status == 400
    assert (await api.get("/v1/exportable-fields", {"scope": "clicks"})).status == 400


async def test_custom_vars_under_both_paths(api: Any) -> None:
    dashed = (await api.get("/v1/custom-vars")).payload()
    assert dashed == (await api.get("/v1/custom_vars")).payload()
    parsed = [CustomVar.from_api(v) for v in dashed]
    assert [(v.position, v.name) for v in parsed][:2] == [(1, "user_type"), (2, "ab_test")]


async def test_dynamic_var_keys_depend_on_the_dates(api: Any) -> None:
    path = "/v1/dynamic-var-keys"
    weekdays = (await api.get(path, {"from": "2026-11-23", "to": "2026-11-26"})).payload()
    weekend = (await api.get(path, {"from": "2026-11-21T00:00:00.000Z",
                                    "to": "2026-11-22T00:00:00.000Z"})).payload()
    keys = {DynamicVarKey.from_api(k).key for k in weekdays}
    assert "utm_campaign" in keys and "weekend_banner" not in keys
    assert "weekend_banner" in {DynamicVarKey.from_api(k).key for k in weekend}
    assert (await api.get(path)).status == 400
    assert (await api.get(path, {"from": "2026-11-23", "to": "2026-11-22"})).status == 400


@pytest.mark.parametrize("path", ["/v1/exports/999", "/v1/exports/abc",
                                  "/v1/exports/999/runs", "/v1/nothing-here"])
async def test_unknown_things_are_404_json(api: Any, path: str) -> None:
    reply = await api.get(path)
    assert reply.status == 404
    assert reply.json()["success"] is False


async def test_a_run_of_another_job_is_404(api: Any, simulator: Simulator) -> None:
    sessions = simulator.job_named("Daily sessions")
    views = simulator.job_named("Daily pageviews")
    run = simulator.runs(views.job_id)[0]
    assert (await api.get(f"/v1/exports/{sessions.job_id}/runs/{run.run_id}")).status == 404


async def test_no_envelope_variant(api: Any, simulator: Simulator) -> None:
    simulator.variants.no_envelope = True
    body = (await api.get("/v1/exports")).json()
    assert isinstance(body, list) and Job.from_api(body[0]).job_id > 0
    error = await api.get("/v1/exports/999")
    assert error.json()["success"] is False, "errors keep their shape"


async def test_string_ids_and_bare_frequency_variants(api: Any, simulator: Simulator) -> None:
    simulator.variants.string_ids = True
    simulator.variants.bare_frequency = True
    raw = (await api.get("/v1/exports")).payload()
    assert all(isinstance(j["jobId"], str) and isinstance(j["frequency"], str) for j in raw)
    job = Job.from_api(raw[-1])
    runs = (await api.get(f"/v1/exports/{job.job_id}/runs")).payload()
    assert all(isinstance(r["jobRunId"], str) and isinstance(r["jobId"], str) for r in runs)
    detail = await api.run_detail(job.job_id, int(runs[0]["jobRunId"]))
    assert all(isinstance(f["partId"], str) for f in detail["files"])
    assert Run.from_api(detail).run_id == int(runs[0]["jobRunId"])
    assert job.frequency == "daily"


async def test_files_without_part_id_or_expiration(api: Any, simulator: Simulator) -> None:
    simulator.variants.files_without_part_id = True
    simulator.variants.files_without_expiration = True
    job = simulator.job_named("Daily sessions")
    run = simulator.runs(job.job_id)[-1]
    detail = await api.run_detail(job.job_id, run.run_id)
    assert detail["files"] and all(set(f) == {"url"} for f in detail["files"])
    parts = Run.from_api(detail).parts
    assert parts is not None
    assert [p.part_id for p in parts] == list(range(1, len(parts) + 1))
