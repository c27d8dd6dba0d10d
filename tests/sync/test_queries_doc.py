"""Every SQL block of docs/queries.md and of the README runs against the simulator's data.

One module-wide world: the simulator (seed 7, three days, no suspended legacy job, so that each
scope has exactly one job) served over real HTTP, synced by csload into a DuckDB file and into
a lake, and the project's custom variables recorded from the API's custom-vars endpoint
(`csload.load.lookups.record_custom_vars`, as a sync does once wired). Each ```sql block of the
guide runs on both targets (the DuckDB-only ones on the file only) and must return rows; where
the block has a checkable answer, `CHECKS` (keyed by the block's heading) compares it with the
simulator's own truth (`Simulator.truth`), computed here in Python from the exported rows. The
codes used to check decoded labels are the contract's (section 8), typed in
tests/support/contract_codes.py, not read from csload's schemas/codes.toml.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest

import csload
from csload.api.client import ExportClient
from csload.config import Settings
from csload.load.lookups import record_custom_vars
from csload.simulator import SimConfig, Simulator
from csload.simulator.variables import custom_var_definitions
from tests.support.contract_codes import APP_EVENT_TYPES, DEVICES
from tests.support.syncref import SIM_START, column_name, successful_runs

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "queries.md"
README = ROOT / "README.md"

Row = dict[str, Any]


# -- the SQL of the documents --------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    heading: str     # the closest heading above the block
    sql: str
    where: str       # file:line, for failure messages

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")


def sql_blocks(path: Path) -> list[Block]:
    """Every ```sql fenced block of a Markdown file, with the heading it sits under."""
    blocks: list[Block] = []
    heading = path.name
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.strip() == "```sql":
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            blocks.append(Block(heading, "\n".join(lines[start:end]),
                                f"{path.name}:{start}"))
            i = end
        i += 1
    return blocks


def python_sql(path: Path) -> list[Block]:
    """The SQL strings passed to `con.sql("...")` / `con.execute("...")` in ```python blocks."""
    text = path.read_text(encoding="utf-8")
    out = []
    for block in re.finditer(r"```python\n(.*?)```", text, re.S):
        for call in re.finditer(r"con\.(?:sql|execute)\(\"([^\"]+)\"", block.group(1)):
            line = text.count("\n", 0, block.start(1) + call.start()) + 1
            out.append(Block(f"{path.name} python example", call.group(1),
                             f"{path.name}:{line}"))
    return out


GUIDE_BLOCKS = sql_blocks(GUIDE)
README_BLOCKS = sql_blocks(README) + python_sql(README)

# Blocks that need what only a DuckDB database holds (the lake has no custom-vars table).
DUCKDB_ONLY = {"The names of the custom variables"}
# Blocks whose right answer on the simulator's clean data is no row at all.
MAY_BE_EMPTY = {"Runs that did not load"}


# -- the world --------------------------------------------------------------------------------


@dataclass
class World:
    db: Path
    lake: Path
    sessions: list[Row]
    views: list[Row]
    view_runs: dict[int, int]              # run id -> rows it exported
    custom_columns: set[tuple[int, str, str]]   # (position, table, column) the jobs export

    def connect(self, target: str) -> duckdb.DuckDBPyConnection:
        if target == "duckdb":
            return csload.connect(self.db, read_only=True)
        return csload.connect(parquet=str(self.lake))


def _truth(sim: Simulator, scope: str) -> tuple[list[Row], dict[int, int]]:
    """The rows of every successful run of the scope's job, named as csload names columns."""
    rows: list[Row] = []
    per_run: dict[int, int] = {}
    for job in sim.jobs:
        if job.scope != scope:
            continue
        for run_id in successful_runs(sim, [job.job_id]):
            exported = sim.truth(job.job_id, run_id)
            per_run[run_id] = len(exported)
            for raw in exported:
                row = {column_name(k): v for k, v in raw.items()}
                day = row["session_date"] if scope == "sessions" else row["view_time"].date()
                row.update(_run_id=run_id, _date=day)
                rows.append(row)
    return rows, per_run


async def _custom_vars(settings: Settings) -> list[tuple[int, str | None]]:
    async with ExportClient(settings) as client:
        return [(v.position, v.name) for v in await client.custom_vars()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sim = Simulator(SimConfig(seed=7, days=3, sessions_per_day=80, start_time=SIM_START,
                              seed_suspended_job=False))
    handle = sim.start_in_thread()
    try:
        client_id, client_secret, project_id = sim.credentials
        settings = Settings(client_id=client_id, client_secret=client_secret,
                            project_id=project_id, auth_url=handle.base_url)
        folder = tmp_path_factory.mktemp("queries")
        db, lake = folder / "cs.duckdb", folder / "lake"
        assert csload.sync(settings, db=db).exit_code == 0
        assert csload.sync(settings, parquet=lake).exit_code == 0
        variables = anyio.run(_custom_vars, settings)
        con = csload.connect(db)
        try:
            record_custom_vars(con, variables)
        finally:
            con.close()
        sessions, _ = _truth(sim, "sessions")
        views, view_runs = _truth(sim, "views")
        custom_columns = {(f.custom_var_position, job.scope, column_name(f.column_name))
                          for job in sim.jobs for f in job.fields
                          if f.custom_var_position is not None}
        yield World(db, lake, sessions, views, view_runs, custom_columns)
    finally:
        handle.stop()


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> list[Row]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


# -- the simulator's answers --------------------------------------------------------------------


def _seconds(values: list[int]) -> float:
    return statistics.fmean(values) / 1000


def _by(rows: list[Row], *keys: str) -> dict[tuple[Any, ...], Row]:
    out = {tuple(r[k] for k in keys): r for r in rows}
    assert len(out) == len(rows), f"the query returned the same {keys} twice"
    return out


def check_pageviews_per_day_and_device(got: list[Row], w: World) -> None:
    sessions: dict[tuple[date, str], set[int]] = defaultdict(set)
    views: Counter[tuple[date, str]] = Counter()
    for v in w.views:
        key = (v["_date"], DEVICES[v["device_id"]])
        views[key] += 1
        sessions[key].add(v["session_id"])
    assert {k: (r["pageviews"], r["sessions"]) for k, r in _by(got, "day", "device").items()} \
        == {k: (n, len(sessions[k])) for k, n in views.items()}


def check_bounce_rate(got: list[Row], w: World) -> None:
    want: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for s in w.sessions:
        counts = want[(s["session_date"], DEVICES[s["device_id"]])]
        counts[0] += 1
        counts[1] += s["session_number_of_views"] == 1
    rows = _by(got, "day", "device")
    assert {k: [r["sessions"], r["bounces"]] for k, r in rows.items()} == dict(want)
    for key, (n, bounces) in want.items():
        assert float(rows[key]["bounce_rate_pct"]) == pytest.approx(100 * bounces / n, abs=0.051)


def check_bounce_rate_from_views(got: list[Row], w: World) -> None:
    per_session: dict[int, list[Any]] = {}
    for v in w.views:
        entry = per_session.setdefault(v["session_id"], [v["_date"], 0])
        entry[0] = min(entry[0], v["_date"])
        entry[1] += 1
    want: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for day, n in per_session.values():
        want[day][0] += 1
        want[day][1] += n == 1
    assert {k[0]: [r["sessions"], r["bounces"]] for k, r in _by(got, "day").items()} \
        == dict(want)


def check_time_on_page(got: list[Row], w: World) -> None:
    durations: dict[str, list[int]] = defaultdict(list)
    interacting: dict[str, list[int]] = defaultdict(list)
    for v in w.views:
        durations[v["path"]].append(v["duration_ms"])
        interacting[v["path"]].append(v["page_interaction_time_msec"])
    rows = _by(got, "path")
    assert {k[0]: r["pageviews"] for k, r in rows.items()} \
        == {p: len(d) for p, d in durations.items()}
    for (path,), r in rows.items():
        assert r["avg_seconds_on_page"] == pytest.approx(_seconds(durations[path]), abs=0.051)
        assert r["median_seconds_on_page"] == pytest.approx(
            statistics.median(durations[path]) / 1000, abs=0.051)
        assert r["avg_seconds_interacting"] == pytest.approx(_seconds(interacting[path]),
                                                             abs=0.051)


def check_landing_pages(got: list[Row], w: World) -> None:
    landing = {v["session_id"]: v["path"] for v in w.views if v["view_number"] == 1}
    want: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in w.sessions:
        if s["session_id"] in landing:
            want[(s["country_code"], landing[s["session_id"]])].append(
                s["session_duration_msec"])
    rows = _by(got, "country_code", "landing_page")
    assert {k: r["sessions"] for k, r in rows.items()} == {k: len(d) for k, d in want.items()}
    for key, r in rows.items():
        assert r["avg_session_seconds"] == pytest.approx(_seconds(want[key]), abs=0.051)


def check_incomplete_sessions(got: list[Row], w: World) -> None:
    loaded = Counter(v["session_id"] for v in w.views)
    want: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for s in w.sessions:
        want[s["session_date"]][0] += 1
        want[s["session_date"]][1] += loaded[s["session_id"]] < s["session_number_of_views"]
    rows = {k[0]: [r["sessions"], r["sessions_missing_pageviews"]]
            for k, r in _by(got, "day").items()}
    assert rows == dict(want)


def check_app_events(got: list[Row], w: World) -> None:
    events: Counter[tuple[str, str]] = Counter()
    sessions: dict[tuple[str, str], set[int]] = defaultdict(set)
    for s in w.sessions:
        for kind, name in zip(s["app_events_event_type"], s["app_events_event_name"],
                              strict=True):
            key = (APP_EVENT_TYPES[kind], name)
            events[key] += 1
            sessions[key].add(s["session_id"])
    rows = _by(got, "event_type_name", "event_name")
    assert {k: (r["events"], r["sessions"]) for k, r in rows.items()} \
        == {k: (n, len(sessions[k])) for k, n in events.items()}


def check_errors(got: list[Row], w: World) -> None:
    errors: Counter[tuple[date, str]] = Counter()
    sessions: dict[tuple[date, str], set[int]] = defaultdict(set)
    messages: dict[tuple[date, str], set[str]] = defaultdict(set)
    for v in w.views:
        for kind, message in zip(v["errors_error_type"], v["error_messages"], strict=True):
            key = (v["_date"], kind)
            errors[key] += 1
            sessions[key].add(v["session_id"])
            messages[key].add(message)
    rows = _by(got, "day", "error_type")
    assert {k: (r["errors"], r["sessions_with_errors"], r["distinct_messages"])
            for k, r in rows.items()} \
        == {k: (n, len(sessions[k]), len(messages[k])) for k, n in errors.items()}


def check_revenue_per_day(got: list[Row], w: World) -> None:
    want: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for s in w.sessions:
        day = want[s["session_date"]]
        day[0] += 1
        day[1] += s["session_number_of_transactions"] > 0
        day[2] += s["session_number_of_transactions"]
        day[3] += s["session_transactions_revenue_cents"]
    rows = _by(got, "day")
    assert {k[0]: [r["sessions"], r["buying_sessions"], r["transactions"], r["revenue_cents"]]
            for k, r in rows.items()} == dict(want)
    assert sum(d[1] for d in want.values()) > 0, "no transactions to check"
    for (day,), r in rows.items():
        assert r["revenue"] == pytest.approx(want[day][3] / 100, abs=0.0051)


def check_revenue_per_product(got: list[Row], w: World) -> None:
    transactions: dict[str, set[str]] = defaultdict(set)
    units: Counter[str] = Counter()
    cents: Counter[str] = Counter()
    for s in w.sessions:
        for tx, sku, quantity, revenue in zip(
                s["session_transaction_items_id"], s["session_transaction_items_sku"],
                s["session_transaction_items_quantity"],
                s["session_transaction_items_revenue_cents"], strict=True):
            transactions[sku].add(tx)
            units[sku] += quantity
            cents[sku] += revenue
    assert {k[0]: (r["transactions"], r["units"], r["revenue_cents"])
            for k, r in _by(got, "sku").items()} \
        == {sku: (len(transactions[sku]), units[sku], cents[sku]) for sku in cents}


def check_carts(got: list[Row], w: World) -> None:
    added: Counter[str] = Counter()
    bought: Counter[str] = Counter()
    for s in w.sessions:
        for sku, flag in zip(s["session_add_to_cart_items_sku"],
                             s["session_add_to_cart_items_is_in_transaction"], strict=True):
            added[sku] += 1
            bought[sku] += flag
    assert {k[0]: (r["added_to_cart"], r["bought"]) for k, r in _by(got, "sku").items()} \
        == {sku: (n, bought[sku]) for sku, n in added.items()}


def check_custom_var_names(got: list[Row], w: World) -> None:
    names = dict(custom_var_definitions())
    carried = {(p, table, column) for p, table, column in w.custom_columns}
    exported = {p for p, _, _ in carried}
    want: set[tuple[int, str, str | None, str | None]] = {
        (p, names[p], table, column) for p, table, column in carried}
    want |= {(p, name, None, None) for p, name in names.items() if p not in exported}
    assert {(r["position"], r["name"], r["table_name"], r["column_name"]) for r in got} == want
    assert len(got) == len(want)


def check_custom_var_values(got: list[Row], w: World) -> None:
    assert {r["page_category"]: r["pageviews"] for r in got} \
        == dict(Counter(v["custom_var_3"] for v in w.views))


def check_rows_per_run(got: list[Row], w: World) -> None:
    assert {r["run_id"]: (r["status"], r["rows_when_loaded"], r["rows_now"]) for r in got} \
        == {run: ("loaded", n, n) for run, n in w.view_runs.items()}
    assert {r["job"] for r in got} == {"Daily pageviews"}


def check_freshness(got: list[Row], w: World) -> None:
    assert {r["table_name"]: r["last_day"] for r in got} == {
        "views": max(v["_date"] for v in w.views),
        "sessions": max(s["_date"] for s in w.sessions)}
    assert all(isinstance(r["last_loaded_at"], datetime) for r in got)


def check_no_failed_runs(got: list[Row], w: World) -> None:
    assert got == []


def check_column_comments(got: list[Row], w: World) -> None:
    comments = {(r["table_name"], r["column_name"]): r["comment"] for r in got}
    for table in ("sessions", "views"):
        assert all(label in comments[(table, "device_id")] for label in DEVICES.values())
        assert "run that delivered the row" in comments[(table, "_run_id")]
    assert "view_duration_msec" in comments[("views", "duration_ms")]
    assert "start" in comments[("sessions", "app_events_event_type")]


CHECKS: dict[str, Callable[[list[Row], World], None]] = {
    "Pageviews per day and device": check_pageviews_per_day_and_device,
    "Bounce rate per day and device": check_bounce_rate,
    "Bounce rate from pageviews alone": check_bounce_rate_from_views,
    "Time on page": check_time_on_page,
    "Landing pages by country": check_landing_pages,
    "Sessions whose pageviews are not all loaded yet": check_incomplete_sessions,
    "App events by type": check_app_events,
    "Errors per day and type": check_errors,
    "Revenue per day": check_revenue_per_day,
    "Revenue per product": check_revenue_per_product,
    "Added to cart, and bought": check_carts,
    "The names of the custom variables": check_custom_var_names,
    "Pageviews per value of a custom variable": check_custom_var_values,
    "Rows per run": check_rows_per_run,
    "How fresh the data is": check_freshness,
    "Runs that did not load": check_no_failed_runs,
    "What a column holds": check_column_comments,
}


# -- the tests ----------------------------------------------------------------------------------


def test_the_guide_covers_what_analysts_ask_and_every_block_is_checked() -> None:
    headings = [b.heading for b in GUIDE_BLOCKS]
    assert len(headings) == len(set(headings)), "one ```sql block per heading"
    # Every check finds its block (a renamed heading must not silently drop a check) and every
    # block has a check.
    assert set(CHECKS) == set(headings)
    for block in GUIDE_BLOCKS:
        assert "CASE" not in block.sql.upper().split(), \
            f"{block.where}: decode codes with the codes.* lookup tables"


GUIDE_CASES = [pytest.param(block, target, id=f"{block.slug}-{target}")
               for block in GUIDE_BLOCKS for target in ("duckdb", "lake")
               if target == "duckdb" or block.heading not in DUCKDB_ONLY]


@pytest.mark.parametrize(("block", "target"), GUIDE_CASES)
def test_guide_query_answers_as_the_simulator_says(world: World, block: Block,
                                                   target: str) -> None:
    con = world.connect(target)
    try:
        got = run_sql(con, block.sql)
    finally:
        con.close()
    if block.heading not in MAY_BE_EMPTY:
        assert got, f"{block.where} ({block.heading}) returned no rows on the {target} target"
    CHECKS[block.heading](got, world)


@pytest.mark.parametrize("block", README_BLOCKS, ids=lambda b: b.where)
def test_readme_query_runs(world: World, block: Block) -> None:
    for target in ("duckdb", "lake"):
        con = world.connect(target)
        try:
            assert run_sql(con, block.sql), f"{block.where} returned no rows on {target}"
        finally:
            con.close()


def test_readme_has_sql_examples_and_links_the_guide() -> None:
    assert len(README_BLOCKS) >= 2
    assert "docs/queries.md" in README.read_text(encoding="utf-8")
