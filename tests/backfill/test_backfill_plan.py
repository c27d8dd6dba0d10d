"""The plan of a backfill, as pure functions: windows, names, the days that can be had."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import csload
from csload.api.jobspec import parse_field
from csload.backfills.plan import Template, Window, available_days, job_name, split_days
from csload.backfills.report import BackfillStatus
from csload.config import Settings
from csload.simulator import ServerHandle, Simulator
from tests.support.bfref import days

TEMPLATE = Template(scope="views", format="JSONL",
                    fields=(parse_field("session_id"), parse_field("view_number")),
                    table="views")


def test_a_range_is_cut_into_windows_of_at_most_7_days() -> None:
    windows = split_days(days(date(2026, 10, 30), date(2026, 11, 18)), anchor=date(2026, 10, 30))
    assert [w.label for w in windows] == [
        "2026-10-30..2026-11-05", "2026-11-06..2026-11-12", "2026-11-13..2026-11-18"]
    assert sum(len(w.days) for w in windows) == 20


def test_anchored_windows_keep_their_boundaries_when_edge_days_drop_out() -> None:
    anchor = date(2026, 1, 1)
    full = split_days(days(anchor, date(2026, 1, 21)), anchor=anchor)
    trimmed = split_days(days(date(2026, 1, 3), date(2026, 1, 21)), anchor=anchor)
    assert full[1:] == trimmed[1:]
    assert trimmed[0] == Window(date(2026, 1, 3), date(2026, 1, 8))


def test_gaps_are_grouped_by_consecutive_days() -> None:
    gaps = [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 9),
            *days(date(2026, 11, 12), date(2026, 11, 21))]
    assert [w.label for w in split_days(gaps)] == [
        "2026-11-02..2026-11-03", "2026-11-09..2026-11-09", "2026-11-12..2026-11-18",
        "2026-11-19..2026-11-21"]
    assert split_days([]) == []


def test_job_names_are_deterministic_and_tell_plans_apart() -> None:
    window = Window(date(2026, 11, 1), date(2026, 11, 8))
    name = job_name(TEMPLATE, window)
    assert name.startswith("csload backfill views 2026-11-01..2026-11-07 ")
    assert name == job_name(Template(scope="views", format="JSONL",
                                     fields=TEMPLATE.fields, table="views"), window)
    others = [
        Template(scope="views", format="CSV", fields=TEMPLATE.fields, table="views"),
        Template(scope="views", format="JSONL", fields=TEMPLATE.fields, table="other"),
        Template(scope="views", format="JSONL", fields=TEMPLATE.fields, table="views",
                 device_label="mobile"),
        Template(scope="views", format="JSONL", fields=TEMPLATE.fields[:1], table="views"),
    ]
    assert len({job_name(t, window) for t in [TEMPLATE, *others]}) == 5
    spec = TEMPLATE.spec(window)
    assert spec.name == name and spec.frequency == "once"
    assert (spec.date_from, spec.date_to) == (datetime(2026, 11, 1, tzinfo=UTC),
                                              datetime(2026, 11, 8, tzinfo=UTC))


def test_available_days() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    ok, lost = available_days(days(date(2025, 10, 23), date(2025, 10, 26))
                              + days(date(2026, 11, 23), date(2026, 11, 26)), now)
    assert ok == [date(2025, 10, 25), date(2025, 10, 26), date(2026, 11, 23), date(2026, 11, 24)]
    assert [(u.first, u.last) for u in lost] == [
        (date(2025, 10, 23), date(2025, 10, 24)), (date(2026, 11, 25), date(2026, 11, 26))]
    assert "2025-10-23..2025-10-24" in str(lost[0])


def test_the_blocking_api(simulator: Simulator, sim_thread: ServerHandle,
                          tmp_path: Path) -> None:
    client_id, client_secret, project_id = simulator.credentials
    settings = Settings(client_id=client_id, client_secret=client_secret,
                        project_id=project_id, auth_url=sim_thread.base_url)

    async def sleep(seconds: float) -> None:
        simulator.advance(seconds)

    report = csload.backfill(settings, scope="sessions", date_from=date(2026, 11, 20),
                             date_to=date(2026, 11, 21), fields=["session_id", "user_id"],
                             table="sessions_archive", db=tmp_path / "cs.duckdb", sleep=sleep,
                             clock=simulator.clock.now, poll_interval=5)
    assert isinstance(report, csload.BackfillReport)
    assert [i.status for i in report.items] == [BackfillStatus.LOADED]
    assert report.items[0].window.days == [date(2026, 11, 20), date(2026, 11, 21)]
    assert report.rows > 0 and report.finished_at is not None
    assert report.finished_at - report.started_at < timedelta(hours=1)
