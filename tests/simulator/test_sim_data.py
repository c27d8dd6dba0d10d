"""The generated data: deterministic, coherent between scopes, and changed by a re-run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from csload.api.schemas import load_schema
from csload.simulator import SimConfig, Simulator

DAY = date(2026, 11, 24)


def run_of(sim: Simulator, name: str, day: date = DAY) -> tuple[int, int]:
    job = sim.job_named(name)
    run = next(r for r in sim.runs(job.job_id) if r.start.date() == day)
    return job.job_id, run.run_id


def test_same_seed_same_bytes(sim_config: SimConfig) -> None:
    first, second = Simulator(sim_config), Simulator(sim_config)
    for name in ("Daily sessions", "Daily pageviews", "Legacy sessions (CSV)"):
        job_id = first.job_named(name).job_id
        runs = [r.run_id for r in first.runs(job_id)]
        assert runs == [r.run_id for r in second.runs(job_id)]
        for run_id in runs:
            assert first.part_bodies(job_id, run_id, compressed=True) == second.part_bodies(
                job_id, run_id, compressed=True)


def test_another_seed_other_data(sim_config: SimConfig) -> None:
    other = SimConfig(seed=8, days=sim_config.days, sessions_per_day=sim_config.sessions_per_day,
                      start_time=sim_config.start_time)
    a, b = Simulator(sim_config), Simulator(other)
    assert a.truth(*run_of(a, "Daily sessions")) != b.truth(*run_of(b, "Daily sessions"))


def test_views_belong_to_sessions(simulator: Simulator) -> None:
    sessions = simulator.truth(*run_of(simulator, "Daily sessions"))
    views = simulator.truth(*run_of(simulator, "Daily pageviews"))
    by_session: dict[int, list[dict[str, Any]]] = {}
    for view in views:
        by_session.setdefault(view["session_id"], []).append(view)
    assert set(by_session) == {s["session_id"] for s in sessions}
    for session in sessions:
        mine = by_session[session["session_id"]]
        assert [v["view_number"] for v in mine] == list(
            range(1, session["session_number_of_views"] + 1))
        for view in mine:
            assert view["user_id"] == session["visitor_id"]
            assert view["session_number"] == session["session_number"]
            assert view["device_id"] == session["device_id"]
            assert view["view_time"] >= session["session_start"]
            assert view["view_time"].date() == session["session_date"] == DAY
        assert mine[0]["is_first"] == 1 and mine[-1]["is_last"] == 1
    assert len(views) > 3 * len(sessions)


def test_parallel_arrays_have_equal_lengths(simulator: Simulator) -> None:
    for name, scope in (("Daily sessions", "sessions"), ("Daily pageviews", "views")):
        job_id, run_id = run_of(simulator, name)
        columns = {f.field_name: f.column_name for f in simulator.job(job_id).fields}
        families = load_schema(scope).families()
        rows = simulator.truth(job_id, run_id)
        nonempty = 0
        for family in families.values():
            cols = [columns[spec.name] for spec in family if spec.name in columns]
            for row in rows:
                lengths = {len(row[c]) for c in cols}
                assert len(lengths) == 1, (cols, row)
                nonempty += bool(lengths.pop())
        assert nonempty > 10


def test_values_are_plausible(simulator: Simulator) -> None:
    sessions = simulator.truth(*run_of(simulator, "Daily sessions"))
    views = simulator.truth(*run_of(simulator, "Daily pageviews"))
    assert {s["project_id"] for s in sessions} == {42}
    assert {s["device_id"] for s in sessions} <= {0, 1, 2, 3, 4, 5}
    assert len({s["country_code"] for s in sessions}) > 3
    assert all(s["session_start"].date() == s["session_date"] for s in sessions)
    assert len({s["session_id"] for s in sessions}) == len(sessions)
    for view in views:
        assert view["page_url"].startswith("https://www.shop.example/")
        assert view["page_interaction_time_msec"] <= view["duration_ms"]
        assert view["scroll_rate"] is None or 0 <= view["scroll_rate"] <= 100
    assert any(v["dynamic_var_utm_campaign"] is None for v in views)
    assert any(v["dynamic_var_utm_campaign"] for v in views)
    assert any(v["user_type"] is None for v in views) and any(v["user_type"] for v in views)
    assert any(s["session_transactions_revenue_cents"] > 0 for s in sessions)


def test_rerun_changes_values_over_mostly_the_same_keys(simulator: Simulator) -> None:
    job_id, first_run = run_of(simulator, "Daily pageviews")
    before = simulator.truth(job_id, first_run)
    rerun = simulator.rerun(job_id, DAY)
    assert rerun > first_run
    run = simulator.run(rerun)
    assert run.state(simulator.clock.now()) == "SUCCESS"
    assert (run.start, run.end) == (datetime(2026, 11, 24, tzinfo=UTC),
                                    datetime(2026, 11, 25, tzinfo=UTC))
    after = simulator.truth(job_id, rerun)
    assert simulator.truth(job_id, first_run) == before, "the first run keeps its data"

    def keyed(rows: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
        return {(r["session_id"], r["view_number"]): r for r in rows}

    old, new = keyed(before), keyed(after)
    common = old.keys() & new.keys()
    assert len(common) > 0.9 * len(old)
    assert old.keys() != new.keys(), "a re-run may add and drop rows"
    assert sum(old[k] != new[k] for k in common) > 0.1 * len(common)
    # A second re-run is yet another revision.
    assert simulator.truth(job_id, simulator.rerun(job_id, DAY)) != after


def test_rerun_of_a_day_shows_in_the_sessions_scope_too(simulator: Simulator) -> None:
    views_job, _ = run_of(simulator, "Daily pageviews")
    sessions_job, sessions_run = run_of(simulator, "Daily sessions")
    simulator.rerun(views_job, DAY)
    later = simulator.rerun(sessions_job, DAY)
    assert simulator.truth(sessions_job, later) != simulator.truth(sessions_job, sessions_run)
