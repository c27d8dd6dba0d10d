"""Every create-job rule of the contract (section 4) is checked before the request is sent.

Each case is checked three ways: csload refuses it locally with a message naming the rule, the
simulator saw no create request, and the simulator itself refuses the same body (so the local
rule mirrors the server's, not a stricter invention) unless the case says csload is stricter.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from csload.api.client import ExportClient
from csload.api.jobspec import (
    InvalidJobSpec,
    Rule,
    create_job,
    earliest_exportable_day,
    parse_field,
    parse_fields,
    validate_spec,
)
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.config import Settings
from csload.errors import ApiRequestError, ConfigError
from csload.simulator import Simulator

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # the simulator's frozen clock


def day(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def fields(*names: str) -> tuple[JobField, ...]:
    return tuple(parse_field(name) for name in names)


BASE = JobSpec(name="Backfill views", format="JSONL", scope="views", frequency="once",
               fields=fields("session_id", "view_number"), date_from=day(2026, 11, 20),
               date_to=day(2026, 11, 22))

# (id, changes to BASE, the rule's name in the message, the simulator refuses it too)
CASES: list[tuple[str, dict[str, Any], str, bool]] = [
    ("empty-name", {"name": "  "}, Rule.NAME, True),
    ("format", {"format": "PARQUET"}, Rule.FORMAT, True),
    ("scope", {"scope": "events"}, Rule.SCOPE, True),
    ("frequency", {"frequency": "weekly"}, Rule.FREQUENCY, True),
    ("device", {"device_label": "watch"}, Rule.DEVICE, True),
    ("segment", {"segment_id": -3}, Rule.SEGMENT, True),
    ("segment-0", {"segment_id": 0}, Rule.SEGMENT, True),   # ids start at 1 (QA, 2026-12-08)
    ("once-without-range", {"date_from": None, "date_to": None}, Rule.ONCE_RANGE, True),
    ("once-without-to", {"date_to": None}, Rule.ONCE_RANGE, True),
    ("to-equals-from", {"date_to": day(2026, 11, 20)}, Rule.RANGE_ORDER, True),
    ("to-before-from", {"date_to": day(2026, 11, 19)}, Rule.RANGE_ORDER, True),
    ("8-days", {"date_from": day(2026, 11, 10), "date_to": day(2026, 11, 18)}, Rule.SPAN,
     True),
    ("7-days-widened-to-8", {"date_from": day(2026, 11, 10, 6),
                             "date_to": day(2026, 11, 17, 6)}, Rule.SPAN, True),
    ("retention", {"date_from": day(2025, 10, 24), "date_to": day(2025, 10, 26)},
     Rule.RETENTION, True),
    ("no-fields", {"fields": ()}, Rule.FIELDS, True),
    ("unknown-field", {"fields": fields("session_id", "sessionid")}, Rule.UNKNOWN_FIELD, True),
    ("field-of-other-scope", {"fields": fields("session_id", "session_duration_msec")},
     Rule.UNKNOWN_FIELD, True),
    ("duplicate-field", {"fields": fields("session_id", "url", "session_id:again")},
     Rule.DUPLICATE_FIELD, True),
    ("custom-var-0", {"fields": fields("session_id", "custom_var:0")}, Rule.POSITION, True),
    ("custom-var-21", {"fields": fields("session_id", "custom_var:21")}, Rule.POSITION, True),
    ("custom-var-no-position", {"fields": (JobField("custom_var"),)}, Rule.POSITION, True),
    ("dynamic-var-no-key", {"fields": (JobField("dynamic_var"),)}, Rule.KEY, True),
    ("same-column", {"fields": fields("url:page", "path:page")}, Rule.COLUMN, True),
    # csload's own (the API takes these; csload could load none of their runs).
    ("csload-reserved-column", {"fields": fields("session_id", "url:_job_id")},
     Rule.CSLOAD_COLUMN, False),
    ("csload-same-column", {"fields": fields("session_id", "url:Session ID")},
     Rule.CSLOAD_COLUMN, False),
    ("csload-column-of-no-letter", {"fields": fields("session_id", "url:商品")},
     Rule.CSLOAD_COLUMN, False),
    # A range not over yet: its run would export the rows so far (QA, 2026-12-08).
    ("days-not-over", {"date_from": day(2026, 11, 24), "date_to": day(2026, 11, 26)},
     Rule.DAYS_OVER, False),
    ("days-not-over-by-an-hour", {"date_from": day(2026, 11, 25),
                                  "date_to": day(2026, 11, 25, 13)}, Rule.DAYS_OVER, False),
    # The simulator ignores a daily job's date range; csload refuses to send one.
    ("range-on-daily", {"frequency": "daily"}, Rule.RANGE_ONLY_ONCE, False),
]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[ExportClient]:
    async with ExportClient(settings) as c:
        yield c


@pytest.mark.parametrize(("changes", "rule", "server_refuses"),
                         [pytest.param(c, r, s, id=i) for i, c, r, s in CASES])
async def test_each_rule_is_checked_before_sending(
        client: ExportClient, simulator: Simulator, changes: dict[str, Any], rule: str,
        server_refuses: bool) -> None:
    spec = dataclasses.replace(BASE, **changes)
    with pytest.raises(InvalidJobSpec) as caught:
        await create_job(client, spec, now=NOW)
    message = str(caught.value)
    assert f"rule: {rule}" in message
    assert [p.rule for p in caught.value.problems] == [rule]
    assert simulator.stats.requests["create_job"] == 0, "nothing may be sent"

    if server_refuses:
        with pytest.raises(ApiRequestError) as refused:
            await client.create_job(spec)
        assert refused.value.status == 400
    else:
        await client.create_job(spec)


async def test_the_boundaries_pass_locally_and_on_the_server(
        client: ExportClient, simulator: Simulator) -> None:
    earliest = earliest_exportable_day(NOW)
    assert earliest.isoformat() == "2025-10-25"
    start = datetime(earliest.year, earliest.month, earliest.day, tzinfo=UTC)
    ok = [
        dataclasses.replace(BASE, date_from=start, date_to=start + timedelta(days=7)),
        dataclasses.replace(BASE, date_from=day(2026, 11, 24), date_to=day(2026, 11, 25)),
        dataclasses.replace(BASE, fields=fields(
            "session_id", "custom_var:1", "custom_var:20:cv20", "dynamic_var:utm_source",
            "dynamic_var:utm_campaign")),
        dataclasses.replace(BASE, frequency="daily", date_from=None, date_to=None,
                            device_label="mobile", segment_id=12),
    ]
    for spec in ok:
        assert validate_spec(spec, now=NOW) == []
        job = await create_job(client, spec, now=NOW)
        assert job.job_id > 0
    assert simulator.stats.requests["create_job"] == len(ok)


async def test_every_problem_is_listed_at_once(client: ExportClient,
                                               simulator: Simulator) -> None:
    spec = dataclasses.replace(BASE, name="", format="XML",
                               fields=fields("nope", "custom_var:99"),
                               date_to=day(2026, 12, 20))
    with pytest.raises(InvalidJobSpec) as caught:
        await create_job(client, spec, now=NOW)
    rules = [p.rule for p in caught.value.problems]
    assert rules == [Rule.NAME, Rule.FORMAT, Rule.SPAN, Rule.DAYS_OVER, Rule.UNKNOWN_FIELD,
                     Rule.POSITION]
    assert "6 problems" in str(caught.value)
    assert simulator.stats.requests["create_job"] == 0


async def test_the_apis_own_refusal_says_the_local_checks_passed(
        client: ExportClient, simulator: Simulator) -> None:
    simulator.config.data_retention_months = 1  # the API is stricter than csload assumes
    spec = dataclasses.replace(BASE, date_from=day(2026, 10, 1), date_to=day(2026, 10, 3))
    with pytest.raises(ApiRequestError) as refused:
        await create_job(client, spec, now=NOW)
    message = str(refused.value)
    assert "although csload's own checks passed" in message
    assert "retention" in message and "HTTP 400" in message
    assert simulator.stats.requests["create_job"] == 1


def test_field_syntax() -> None:
    parsed, problems = parse_fields(["url:page_url", "custom_var:3", "custom_var:2:ab",
                                     "dynamic_var:utm_source:campaign", "view_time"])
    assert problems == []
    assert [f.to_api() for f in parsed] == [
        {"fieldName": "url", "aliasName": "page_url"},
        {"fieldName": "custom_var", "customVarPosition": 3},
        {"fieldName": "custom_var", "aliasName": "ab", "customVarPosition": 2},
        {"fieldName": "dynamic_var", "aliasName": "campaign", "dynamicVarKey": "utm_source"},
        {"fieldName": "view_time"},
    ]
    _, broken = parse_fields(["custom_var:x", "custom_var", ":alias"])
    assert [p.rule for p in broken] == [Rule.POSITION, Rule.POSITION, Rule.UNKNOWN_FIELD]


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kolkata", "UTC"])
def test_a_once_jobs_days_are_utc_days_in_any_local_zone(
        zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A date, or a naive datetime, is that UTC day. A naive datetime was read in the machine's
    zone (under UTC+14 the job exported 11-19 and half of 11-20), a naive week was refused as
    8 days even under UTC, and a date failed with AttributeError (QA, 2026-12-08)."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for first, last in ((datetime(2026, 11, 17), datetime(2026, 11, 24)),
                            (date(2026, 11, 17), date(2026, 11, 24)),
                            (day(2026, 11, 17), day(2026, 11, 24))):
            spec = dataclasses.replace(BASE, date_from=first, date_to=last)
            assert spec.to_api()["frequency"]["dateRange"] == {
                "from": "2026-11-17T00:00:00.000Z", "to": "2026-11-24T00:00:00.000Z"}
            assert validate_spec(spec, now=NOW) == []
            assert spec.date_from == day(2026, 11, 17)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_once_jobs_days_of_another_type_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"JobSpec\.date_from must be a date or a datetime, "
                                          "not str"):
        dataclasses.replace(BASE, date_from="2026-11-20")


def test_retention_clamps_to_the_end_of_a_short_month() -> None:
    # 13 months before 2027-03-31 is 2026-02-31, which does not exist: 2026-02-28.
    assert earliest_exportable_day(datetime(2027, 3, 31, 9, tzinfo=UTC)).isoformat() == \
        "2026-02-28"


def test_several_problems_are_one_numbered_line() -> None:
    # Printed as `error: ...`, lines and dashes ran into one another ("problems):   - a   - b").
    from csload.api.jobspec import Problem

    error = InvalidJobSpec([Problem("format is CSV or JSONL", "format 'XML' is not allowed"),
                            Problem("name is not empty", "the name is empty")])
    assert str(error) == ("invalid job (2 problems): 1. format 'XML' is not allowed (rule: "
                          "format is CSV or JSONL); 2. the name is empty (rule: name is not "
                          "empty)")
    assert len(error.problems) == 2
