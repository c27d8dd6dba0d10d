"""POST /exports: every create-job rule of contract section 4 answers 400 naming the problem."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from csload.api.models import Job

# The fixture clock is 2026-11-25 12:00 UTC: 13 months back is 2025-10-25.
VALID: dict[str, Any] = {
    "name": "Backfill",
    "format": "CSV",
    "scope": "views",
    "frequency": {"value": "once",
                  "dateRange": {"from": "2026-11-20T00:00:00.000Z",
                                "to": "2026-11-22T00:00:00.000Z"}},
    "fields": [{"fieldName": "session_id"}, {"fieldName": "view_number"},
               {"fieldName": "url", "aliasName": "page"}],
    "deviceLabel": "all",
}


def body_with(path: str, value: Any) -> dict[str, Any]:
    """VALID with one dotted path set (value DELETE removes it)."""
    body = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return body


DELETE = object()


async def test_the_valid_body_is_accepted(api: Any) -> None:
    reply = await api.post("/v1/exports", VALID)
    assert reply.status == 200
    job = Job.from_api(reply.payload())
    # Nothing else is queued: a once job starts right away.
    assert job.job_id > 0 and job.frequency == "once" and job.state == "COMPUTING"


@pytest.mark.parametrize(("rule", "body", "mentions"), [
    ("empty name", body_with("name", ""), "name"),
    ("blank name", body_with("name", "   "), "name"),
    ("missing name", body_with("name", DELETE), "name"),
    ("format not in list", body_with("format", "XML"), "format"),
    ("format is case-sensitive", body_with("format", "csv"), "format"),
    ("scope not in list", body_with("scope", "clicks"), "scope"),
    ("frequency not in list", body_with("frequency.value", "weekly"), "frequency"),
    ("deviceLabel not in list", body_with("deviceLabel", "watch"), "deviceLabel"),
    ("once without a date range", body_with("frequency.dateRange", DELETE), "dateRange"),
    ("once without to", body_with("frequency.dateRange.to", DELETE), "dateRange"),
    ("to equal to from",
     body_with("frequency.dateRange.to", "2026-11-20T00:00:00.000Z"), "dateRange.to"),
    ("to before from",
     body_with("frequency.dateRange.to", "2026-11-19T00:00:00.000Z"), "dateRange.to"),
    ("more than 7 days apart",
     body_with("frequency.dateRange", {"from": "2026-11-10", "to": "2026-11-18"}), "7 days"),
    ("more than 7 days once widened to whole days",
     body_with("frequency.dateRange", {"from": "2026-11-10T12:00:00Z",
                                       "to": "2026-11-17T12:00:00Z"}), "7 days"),
    ("from older than the retention",
     body_with("frequency.dateRange", {"from": "2025-10-24", "to": "2025-10-26"}), "retention"),
    ("unparseable from", body_with("frequency.dateRange.from", "yesterday"), "dateRange.from"),
    ("unknown fieldName",
     body_with("fields", [{"fieldName": "session_id"}, {"fieldName": "mouse_moves"}]),
     "mouse_moves"),
    ("a field of the other scope", body_with("fields", [{"fieldName": "city"}]), "city"),
    ("same fieldName twice",
     body_with("fields", [{"fieldName": "url"}, {"fieldName": "url", "aliasName": "u2"}]), "url"),
    ("customVarPosition 0",
     body_with("fields", [{"fieldName": "custom_var", "customVarPosition": 0}]),
     "customVarPosition"),
    ("customVarPosition 21",
     body_with("fields", [{"fieldName": "custom_var", "customVarPosition": 21}]),
     "customVarPosition"),
    ("custom_var without position", body_with("fields", [{"fieldName": "custom_var"}]),
     "customVarPosition"),
    ("dynamic_var without key", body_with("fields", [{"fieldName": "dynamic_var"}]),
     "dynamicVarKey"),
    ("no fields", body_with("fields", []), "fields"),
    ("two columns with one name",
     body_with("fields", [{"fieldName": "url", "aliasName": "path"}, {"fieldName": "path"}]),
     "path"),
])
async def test_invalid_job_is_refused(api: Any, simulator: Any, rule: str, body: dict[str, Any],
                                      mentions: str) -> None:
    jobs_before = len(simulator.jobs)
    reply = await api.post("/v1/exports", body)
    assert reply.status == 400, rule
    data = reply.json()
    assert data["success"] is False
    assert data["errorCode"]
    assert mentions in data["errorMessage"], (rule, data["errorMessage"])
    assert len(simulator.jobs) == jobs_before


async def test_body_that_is_not_json_is_refused(api: Any) -> None:
    async with api.session.post(api.endpoint + "/v1/exports", data=b"{not json",
                                headers={"Authorization": f"Bearer {api.token}",
                                         "Content-Type": "application/json"}) as r:
        assert r.status == 400


@pytest.mark.parametrize(("date_range", "start", "end"), [
    ({"from": "2026-11-20", "to": "2026-11-21"}, "2026-11-20", "2026-11-21"),
    ({"from": "2026-11-20T10:30:00Z", "to": "2026-11-20T11:00:00Z"}, "2026-11-20",
     "2026-11-21"),
    ({"from": "2026-11-15T00:00:00.000Z", "to": "2026-11-22T00:00:00.000Z"}, "2026-11-15",
     "2026-11-22"),
    ({"from": "2026-11-19T23:00:00-02:00", "to": "2026-11-20T06:00:00+00:00"}, "2026-11-20",
     "2026-11-21"),
    ({"from": "2025-10-25", "to": "2025-10-26"}, "2025-10-25", "2025-10-26"),
])
async def test_accepted_windows_are_whole_utc_days(api: Any, date_range: dict[str, str],
                                                   start: str, end: str) -> None:
    reply = await api.post("/v1/exports", body_with("frequency.dateRange", date_range))
    assert reply.status == 200, reply.body
    job = Job.from_api(reply.payload())
    assert job.date_from is not None and job.date_to is not None
    assert job.date_from.isoformat() == f"{start}T00:00:00+00:00"
    assert job.date_to.isoformat() == f"{end}T00:00:00+00:00"


async def test_custom_and_dynamic_vars_may_repeat(api: Any) -> None:
    fields = [
        {"fieldName": "session_id"},
        {"fieldName": "custom_var", "customVarPosition": 1},
        {"fieldName": "custom_var", "customVarPosition": "20"},
        {"fieldName": "dynamic_var", "dynamicVarKey": "plan"},
        {"fieldName": "dynamic_var", "dynamicVarKey": "experiment_id", "aliasName": "exp"},
    ]
    reply = await api.post("/v1/exports", body_with("fields", fields))
    assert reply.status == 200, reply.body
    job = Job.from_api(reply.payload())
    assert [f.column_name for f in job.fields] == [
        "session_id", "custom_var_1", "custom_var_20", "dynamic_var_plan", "exp"]


async def test_daily_job_needs_no_date_range(api: Any) -> None:
    body = body_with("frequency", {"value": "daily"})
    reply = await api.post("/v1/exports", body)
    assert reply.status == 200
    assert reply.payload()["state"] == "ACTIVE"
