"""`once` jobs: created through the API, run one at a time, moved along by the clock."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

from csload.api.models import Job, Run
from csload.simulator import Simulator
from tests.support.exportfmt import decode_parts, job_column_types


def once_body(name: str, start: str = "2026-11-22", end: str = "2026-11-24",
              device: str = "all") -> dict[str, Any]:
    return {
        "name": name, "format": "JSONL", "scope": "views",
        "frequency": {"value": "once", "dateRange": {"from": start, "to": end}},
        "fields": [{"fieldName": "session_id"}, {"fieldName": "view_number"},
                   {"fieldName": "view_time"}, {"fieldName": "device_id"},
                   {"fieldName": "custom_var", "customVarPosition": 2, "aliasName": "ab"}],
        "deviceLabel": device,
    }


async def create(api: Any, body: dict[str, Any]) -> Job:
    reply = await api.post("/v1/exports", body)
    assert reply.status == 200, reply.body
    return Job.from_api(reply.payload())


async def job_state(api: Any, job_id: int) -> str:
    return str((await api.get(f"/v1/exports/{job_id}")).payload()["state"])


async def runs_of(api: Any, job_id: int) -> list[Run]:
    return [Run.from_api(r) for r in (await api.get(f"/v1/exports/{job_id}/runs")).payload()]


async def test_once_run_walks_through_its_states_on_the_clock(api: Any,
                                                              simulator: Simulator) -> None:
    step = simulator.config.once_state_seconds
    job = await create(api, once_body("Backfill"))
    seen = []
    for _ in range(3):
        (run,) = await runs_of(api, job.job_id)
        seen.append((await job_state(api, job.job_id), run.state))
        detail = Run.from_api(await api.run_detail(job.job_id, run.run_id))
        assert detail.parts == ()
        assert detail.finished_at is None
        simulator.advance(step)
    (run,) = await runs_of(api, job.job_id)
    seen.append((await job_state(api, job.job_id), run.state))
    assert seen == [("COMPUTING", "CREATED"), ("COMPUTING", "RUNNABLE"),
                    ("COMPUTING", "RUNNING"), ("COMPLETED", "SUCCESS")]

    detail = Run.from_api(await api.run_detail(job.job_id, run.run_id))
    assert detail.start_date == datetime(2026, 11, 22, tzinfo=UTC)
    assert detail.end_date == datetime(2026, 11, 24, tzinfo=UTC)
    assert detail.finished_at is not None and detail.parts
    rows = decode_parts(await api.download_run(job.job_id, run.run_id), "JSONL",
                        job_column_types("views", job.fields))
    assert rows == simulator.truth(job.job_id, run.run_id)
    assert {r["view_time"].date().isoformat() for r in rows} == {"2026-11-22", "2026-11-23"}


async def test_once_jobs_are_queued_one_at_a_time(api: Any, simulator: Simulator) -> None:
    step = simulator.config.once_state_seconds
    jobs = [await create(api, once_body(f"Backfill {i}")) for i in range(3)]
    ids = [j.job_id for j in jobs]

    async def states() -> list[str]:
        return [await job_state(api, i) for i in ids]

    assert await states() == ["COMPUTING", "ACTIVE", "ACTIVE"]
    assert [len(await runs_of(api, i)) for i in ids] == [1, 0, 0]
    computing = await api.get("/v1/exports", {"state": "COMPUTING"})
    assert [j["jobId"] for j in computing.payload()] == [ids[0]]

    simulator.advance(3 * step)
    assert await states() == ["COMPLETED", "COMPUTING", "ACTIVE"]
    first = (await runs_of(api, ids[0]))[0]
    second = (await runs_of(api, ids[1]))[0]
    assert second.state == "CREATED"
    assert second.created_at == first.finished_at, "the next job starts when the last ends"
    assert second.run_id > first.run_id

    simulator.advance(3 * step - 1)
    assert await states() == ["COMPLETED", "COMPUTING", "ACTIVE"]
    simulator.advance(1)
    assert await states() == ["COMPLETED", "COMPLETED", "COMPUTING"]
    simulator.advance(3 * step)
    assert await states() == ["COMPLETED"] * 3
    for job_id in ids:
        assert [r.state for r in await runs_of(api, job_id)] == ["SUCCESS"]


async def test_once_job_created_later_starts_at_once_when_the_queue_is_empty(
        api: Any, simulator: Simulator) -> None:
    first = await create(api, once_body("first"))
    simulator.advance(600)
    second = await create(api, once_body("second"))
    assert await job_state(api, first.job_id) == "COMPLETED"
    assert await job_state(api, second.job_id) == "COMPUTING"


async def test_once_job_over_a_day_a_daily_job_covered_exports_the_same_rows(
        api: Any, simulator: Simulator) -> None:
    daily = simulator.job_named("Daily pageviews")
    daily_run = next(r for r in simulator.runs(daily.job_id)
                     if r.start == datetime(2026, 11, 23, tzinfo=UTC))
    job = await create(api, once_body("again", "2026-11-23", "2026-11-24"))
    simulator.advance(3 * simulator.config.once_state_seconds)
    (run,) = simulator.runs(job.job_id)

    def keys(rows: list[dict[str, Any]]) -> set[tuple[int, int]]:
        return {(r["session_id"], r["view_number"]) for r in rows}

    assert keys(simulator.truth(job.job_id, run.run_id)) == keys(
        simulator.truth(daily.job_id, daily_run.run_id))


async def test_device_label_filters_the_rows(api: Any, simulator: Simulator) -> None:
    job = await create(api, once_body("mobile only", device="mobile"))
    simulator.advance(3 * simulator.config.once_state_seconds)
    (run,) = simulator.runs(job.job_id)
    rows = simulator.truth(job.job_id, run.run_id)
    assert rows and {r["device_id"] for r in rows} <= {2, 4}


async def test_truth_is_empty_until_the_run_succeeds(api: Any, simulator: Simulator) -> None:
    job = await create(api, once_body("pending"))
    (run,) = simulator.runs(job.job_id)
    assert simulator.truth(job.job_id, run.run_id) == []
    assert simulator.part_bodies(job.job_id, run.run_id) == []
    simulator.advance(3 * simulator.config.once_state_seconds)
    assert simulator.truth(job.job_id, run.run_id)


async def test_a_window_that_has_not_happened_yet_exports_empty_parts(
        api: Any, simulator: Simulator) -> None:
    # The clock says 2026-11-25 12:00: a run of today holds the morning only.
    job = await create(api, once_body("today", "2026-11-25", "2026-11-26"))
    simulator.advance(3 * simulator.config.once_state_seconds)
    (run,) = simulator.runs(job.job_id)
    rows = simulator.truth(job.job_id, run.run_id)
    assert rows and max(r["view_time"] for r in rows) < datetime(2026, 11, 25, 12)

    for fmt, expected in (("CSV", b"session_id,view_number,view_time,device_id,ab\n"),
                          ("JSONL", b"")):
        body = once_body(f"tomorrow {fmt}", "2026-11-26", "2026-11-27")
        body["format"] = fmt
        future = await create(api, body)
        simulator.advance(3 * simulator.config.once_state_seconds)
        (run,) = simulator.runs(future.job_id)
        assert simulator.truth(future.job_id, run.run_id) == []
        (part,) = await api.download_run(future.job_id, run.run_id)
        assert gzip.decompress(part) == expected
        assert decode_parts([part], fmt, job_column_types("views", future.fields)) == []
