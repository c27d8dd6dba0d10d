"""The fault matrix: a multi-day sync of both scopes with each fault knob on, alone and
combined, ends with the tables exactly equal to the simulator's truth.

Every cell checks: exit code 0; every row of every table equal to the reference (0 lost,
0 duplicated, 0 unexpected); every request within the retry budget; at most
`LIMITS.api_concurrency` API requests and `LIMITS.download_concurrency` downloads in flight at
the simulator; the knob really fired; no secret, token or URL signature in any log line (DEBUG)
or in the report's JSON; no token and no Authorization header on any storage request.

Every test runs into both targets (`target_kind`): a DuckDB file and a local lake of Delta tables
(`parquet=ROOT`), whose rows are read through the manifest and as a folder-listing reader sees
them, and which must be tidy afterwards (every data file one of the current version's, no
staging or download folder left); a lake's summary entries carry target="parquet".

Default: each of the eight knobs alone and all eight together; for the lake also two pairs
(LAKE_PAIRS_DEFAULT). --slow: every pair too.

Then a fault that outlasts the retry budget: it fails only its run (or, for the token endpoint,
only that sync), with a message naming job, run and part; the next sync completes it. For the
lake, by default a part cut short every time (LAKE_BEYOND_DEFAULT), every fault with --slow;
the lake's CLI cell and token endpoint outage run with --slow only.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.config import Settings
from csload.errors import ApiUnavailable
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import Simulator
from csload.transfer.stage import URL_REFRESHES
from tests.support.lakekit import assert_lake_tidy
from tests.support.relkit import (
    LIMITS,
    RETRY,
    Secrets,
    exception_texts,
    is_slow,
    log_texts,
)
from tests.support.syncref import SESSIONS_JOB, VIEWS_JOB, run_of, successful_runs
from tests.support.targets import TARGETS, SyncTarget

KNOBS = ("api-429", "api-5xx", "storage-503", "storage-cut", "storage-truncate", "url-expiry",
         "token-expiry", "latency")


def cells(slow: bool) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [(knob,) for knob in KNOBS]
    if slow:
        out += list(itertools.combinations(KNOBS, 2))
    out.append(KNOBS)
    return out


def cell_id(cell: tuple[str, ...]) -> str:
    return "all" if cell == KNOBS else "+".join(cell)


# Two pairs run into the lake by default besides the default cells (every pair with --slow): a
# part cut short whose retry meets an expired URL, and 5xx bursts while tokens expire.
LAKE_PAIRS_DEFAULT = (("storage-cut", "url-expiry"), ("api-5xx", "token-expiry"))
# Beyond the budget, into the lake by default: a part cut short every time.
LAKE_BEYOND_DEFAULT = ("storage-cut",)
# A test that runs into the lake only with --slow.
SLOW_LAKE = ["duckdb", pytest.param("parquet", marks=pytest.mark.slow_only)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    slow = is_slow(metafunc.config)
    if "cell" in metafunc.fixturenames:
        assert all(pair in cells(True) for pair in LAKE_PAIRS_DEFAULT)
        chosen = {kind: cells(slow) for kind in TARGETS}
        if not slow:
            lake = chosen["parquet"]
            chosen["parquet"] = [*lake[:-1], *LAKE_PAIRS_DEFAULT, lake[-1]]
        metafunc.parametrize(("target_kind", "cell"), [
            pytest.param(kind, cell, id=f"{kind}-{cell_id(cell)}")
            for kind in TARGETS for cell in chosen[kind]])
    if "knob" in metafunc.fixturenames:
        knobs = {"duckdb": sorted(BEYOND),
                 "parquet": sorted(BEYOND) if slow else list(LAKE_BEYOND_DEFAULT)}
        metafunc.parametrize(("target_kind", "knob"), [
            pytest.param(kind, knob, id=f"{kind}-{knob}")
            for kind in TARGETS for knob in knobs[kind]])


class Knobs:
    """Turns the cell's knobs on, drives the mid-sync ones from progress events, and checks
    afterwards that each one really fired."""

    def __init__(self, sim: Simulator, cell: tuple[str, ...], slow: bool) -> None:
        self.sim = sim
        self.cell = cell
        # Alone, a knob runs at full strength; together, each is milder so that their sum
        # stays well inside the retry budget (10 attempts): a request fails 10 times in a row
        # with probability below 1e-5 in every cell.
        mixed = len(cell) > 1
        rate = 0.1 if mixed else 0.2
        burst = 3 if mixed else 8
        faults = sim.faults
        self.parts_seen = 0
        self.expired_at: list[int] = []
        self.advanced_at: list[int] = []
        if "api-429" in cell:
            # A storm: the first requests of the sync (the token request, alone at that point)
            # all get 429 with Retry-After, then 429s at random.
            faults.api_429_rate = rate
            faults.api_fail_status = 429
            faults.api_fail_next = burst
        if "api-5xx" in cell:
            faults.api_5xx_rate = rate
        if "storage-503" in cell:
            faults.storage_503_rate = rate
            faults.storage_503_next = 2
        if "storage-cut" in cell:
            faults.storage_cut_rate = rate
            faults.storage_cut_next = 2
        if "storage-truncate" in cell:
            faults.storage_truncate_rate = rate
            faults.storage_truncate_next = 2
        if "url-expiry" in cell:
            sim.config.url_lifetime = 60
        if "latency" in cell:
            faults.latency = 0.1 if slow else 0.05
        self.burst = burst

    def on_event(self, event: SyncEvent) -> None:
        # Called on the sync's event loop; the simulator's knobs are thread-safe.
        if event.kind is EventKind.PLANNED:
            if "api-5xx" in self.cell:
                # A burst of 503s just as the run details are fetched.
                self.sim.faults.api_fail_status = 503
                self.sim.faults.api_fail_next = self.burst
            if "token-expiry" in self.cell:
                self.sim.expire_tokens()
                self.expired_at.append(0)
        if event.kind is not EventKind.PART_DOWNLOADED:
            return
        self.parts_seen += 1
        if "url-expiry" in self.cell and self.parts_seen in (2, 6, 12):
            # Every URL handed out so far expires; the parts still queued meet a 403.
            self.sim.advance(61)
            self.advanced_at.append(self.parts_seen)
        if "token-expiry" in self.cell and self.parts_seen in (3, 9):
            self.sim.expire_tokens()
            self.expired_at.append(self.parts_seen)

    def fired(self) -> dict[str, int]:
        stats = self.sim.stats
        seen = {
            "api-429": stats.faults["api_429"],
            "api-5xx": sum(n for name, n in stats.faults.items()
                           if re.fullmatch(r"api_5\d\d", name)),
            "storage-503": stats.faults["slowdown"],
            "storage-cut": stats.faults["cut"],
            "storage-truncate": stats.faults["truncate"],
            "url-expiry": stats.statuses_by_kind[("storage", 403)],
            "token-expiry": sum(n for (kind, status), n in stats.statuses_by_kind.items()
                                if status == 401 and kind != "token"),
            "latency": stats.delayed_responses,
        }
        return {knob: seen[knob] for knob in self.cell}


def waits(caplog: pytest.LogCaptureFixture, marker: str) -> list[str]:
    """The logged waits ("0.1") before retrying a request that failed with `marker`."""
    return [m.group(1) for m in re.finditer(
        re.escape(marker) + r"[^\n]*retrying in (\d+\.\d) s", caplog.text)]


def max_attempt(caplog: pytest.LogCaptureFixture) -> int:
    found = [int(m.group(1)) for m in re.finditer(r"attempt (\d+)/\d+", caplog.text)]
    return max(found, default=0)


def test_fault_cell_ends_with_exact_tables(
    cell: tuple[str, ...], target: SyncTarget, simulator: Simulator, settings: Settings,
    secrets: Secrets, caplog: pytest.LogCaptureFixture, record: Callable[..., None],
    slow: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    knobs = Knobs(simulator, cell, slow)

    report = csload.sync(settings, **target.sync_to, on_event=knobs.on_event)

    everything = successful_runs(simulator)
    acc = target.compare(simulator, everything)
    stats = simulator.stats
    fired = knobs.fired()
    attempts = max_attempt(caplog)
    record("faults", cell_id(cell), **target.summary, knobs=list(cell), fired=fired,
           runs=len(everything), parts=knobs.parts_seen, api_requests=stats.api_requests,
           storage_requests=stats.storage_requests, max_attempt=attempts,
           max_api_in_flight=stats.max_api_in_flight,
           max_storage_in_flight=stats.max_storage_in_flight, **acc.fields())

    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    if target.is_lake:
        assert report.target == str(target.path)
    assert sorted(r.run_id for r in report.loaded) == sorted(everything)
    acc.assert_exact()
    statuses = target.statuses()
    assert set(statuses.values()) - {"source_failed"} == {"loaded"}
    assert sorted(r for r, s in statuses.items() if s == "loaded") == sorted(everything)
    target.assert_tidy()
    # Each knob did something (the rates are high enough for the seeded draws to hit).
    assert all(n > 0 for n in fired.values()), fired
    if "url-expiry" in cell:
        assert knobs.advanced_at and stats.requests["get_run"] > len(everything)
    if "token-expiry" in cell:
        assert stats.tokens_issued >= 2   # renewed after a JWT_EXPIRED answer
    # Retry-After (sent with every 429 and SlowDown) is what the waits followed, up to the
    # policy's cap (0.06 s, logged as 0.1), rather than the jittered backoff (at most 0.02 s).
    if "api-429" in cell:
        assert waits(caplog, "HTTP 429") and set(waits(caplog, "HTTP 429")) == {"0.1"}
    if "storage-503" in cell:
        assert set(waits(caplog, "storage answered HTTP 503")) == {"0.1"}
    # Within the retry budget: no request needed its last attempt, none gave up.
    assert attempts < RETRY.max_attempts
    assert "gave up" not in caplog.text
    # In-flight caps, as the simulator saw them.
    assert stats.max_api_in_flight <= LIMITS.api_concurrency
    assert stats.concurrency_rejections == 0
    assert 0 < stats.max_storage_in_flight <= LIMITS.download_concurrency
    # Secrets.
    secrets.scan(log_texts(caplog), "a log line")
    secrets.scan([json.dumps(report.to_json())], "the JSON report")
    secrets.check_storage(simulator)


@pytest.mark.parametrize("target_kind", SLOW_LAKE)
def test_all_faults_through_the_cli_json_report(
    target: SyncTarget, simulator: Simulator, settings: Settings, secrets: Secrets,
    tmp_path: Path, child_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    record: Callable[..., None], slow: bool,
) -> None:
    """Every knob that needs no mid-sync hook, at once, through `csload sync --json`: its
    stdout (the JSON report) and stderr hold no secret, and the tables are exact."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "csload.toml").write_text(
        "[limits]\nmax_staged_runs = 2\n[retry]\nmax_attempts = 10\nbase_delay = 0.002\n"
        "max_delay = 0.02\nmax_retry_after = 0.06\n")
    # URL and token expiry are driven from progress events, which the CLI does not expose.
    cell = tuple(k for k in KNOBS if k not in ("url-expiry", "token-expiry"))
    knobs = Knobs(simulator, cell, slow)
    knobs.on_event(SyncEvent(kind=EventKind.PLANNED))   # the 5xx burst, from the start
    env = {k: v for k, v in child_env.items() if k.startswith("CONTENTSQUARE_")}
    option = "--parquet" if target.is_lake else "--db"

    result = CliRunner().invoke(main, ["sync", option, str(target.path), "--json"], env=env,
                                catch_exceptions=False)

    everything = successful_runs(simulator)
    acc = target.compare(simulator, everything)
    record("faults", "all but the expiries, through the CLI (--json)", **target.summary,
           knobs=list(cell), fired=knobs.fired(), runs=len(everything), **acc.fields())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runsLoaded"] == len(everything) and report["exitCode"] == 0
    acc.assert_exact()
    target.assert_tidy()
    assert all(n > 0 for n in knobs.fired().values()), knobs.fired()
    secrets.scan([result.stdout, result.stderr], "the CLI output")
    secrets.check_storage(simulator)


# --- a fault that outlasts the retry budget --------------------------------------------------

BEYOND: dict[str, tuple[str, int, str]] = {
    # knob: (storage fault kind or "api", how many times, what the message must say)
    "storage-503": ("slowdown", RETRY.max_attempts, "storage answered HTTP 503"),
    "storage-cut": ("cut", RETRY.max_attempts, "the connection broke"),
    "storage-truncate": ("truncate", RETRY.max_attempts, "the gzip stream ends early"),
    # A 403 that fresh URLs do not cure, on a run whose files are kept for days more.
    "storage-403": ("denied", URL_REFRESHES + 1, "HTTP 403"),
    # A 404 (a proxy's, say) for a run whose files are kept for days more.
    "storage-404": ("gone", 1, "HTTP 404"),
    "api-5xx-run-detail": ("api", RETRY.max_attempts, "gave up after 10 attempts"),
}


def arm_beyond_budget(simulator: Simulator, knob: str) -> tuple[int, str, str, str]:
    """Arm fault `knob` of BEYOND on part 2 of one views run (or on its run detail): the
    run it hits, where (as an error names it), a label for the results, what the error says."""
    kind, times, says = BEYOND[knob]
    job = VIEWS_JOB
    target = run_of(simulator, job, "2026-11-23")
    assert len(simulator.part_bodies(job, target)) >= 2
    faults = simulator.faults
    if kind == "api":
        faults.api_fail_path, faults.api_fail_path_next = f"/runs/{target}", times
        where = f"/exports/{job}/runs/{target}"
        label = f"HTTP {faults.api_fail_status} x{times} on GET {where}"
    else:
        faults.storage_fault_part = (target, 2)
        faults.storage_fault_part_kind = kind  # type: ignore[assignment]
        faults.storage_fault_part_next = times
        where = f"job {job}, run {target}, part 2"
        label = f"storage {kind} x{times} on {where}"
    return target, where, label, says


def test_a_fault_beyond_the_budget_fails_only_its_run_and_the_next_sync_completes_it(
    knob: str, target: SyncTarget, simulator: Simulator, settings: Settings, secrets: Secrets,
    caplog: pytest.LogCaptureFixture, record: Callable[..., None],
) -> None:
    caplog.set_level(logging.DEBUG)
    failing, where, label, says = arm_beyond_budget(simulator, knob)

    first = csload.sync(settings, **target.sync_to)

    everything = successful_runs(simulator)
    others = [r for r in everything if r != failing]
    after_first = target.compare(simulator, others)
    assert first.exit_code == 3
    assert [r.run_id for r in first.failed] == [failing], [
        (r.run_id, r.status, r.message) for r in first.runs if r.status != "loaded"]
    assert not first.expired
    message = first.failed[0].message or ""
    assert where in message and says in message, message
    assert sorted(r.run_id for r in first.loaded) == sorted(others)
    after_first.assert_exact()   # the other runs, and nothing of the failed one
    status = target.run_message(failing)
    assert status is not None and status[0] == "failed" and where in status[1], status
    target.assert_tidy()

    second = csload.sync(settings, **target.sync_to)

    acc = target.compare(simulator, everything)
    record("beyond budget", knob, **target.summary, fault=label, message=message,
           second_sync_loaded=[r.run_id for r in second.loaded], **acc.fields())
    assert second.exit_code == 0, [r.message for r in second.failed + second.expired]
    assert [r.run_id for r in second.loaded] == [failing]
    acc.assert_exact()
    assert set(target.statuses().values()) - {"source_failed"} == {"loaded"}
    target.assert_tidy()
    secrets.scan(log_texts(caplog), "a log line")
    secrets.scan([json.dumps(first.to_json()), message], "the report")
    secrets.check_storage(simulator)


@pytest.mark.parametrize("target_kind", SLOW_LAKE)
def test_a_token_endpoint_outage_beyond_the_budget_fails_that_sync_clearly(
    target: SyncTarget, simulator: Simulator, settings: Settings, secrets: Secrets,
    caplog: pytest.LogCaptureFixture, record: Callable[..., None],
) -> None:
    caplog.set_level(logging.DEBUG)
    # Loaded before the outage: it must stay exactly as it is.
    early = csload.sync(settings, **target.sync_to, jobs=[SESSIONS_JOB])
    assert early.exit_code == 0
    before = [r.run_id for r in early.loaded]
    simulator.faults.api_fail_path = "/v1/oauth/token"
    simulator.faults.api_fail_path_next = RETRY.max_attempts

    with pytest.raises(ApiUnavailable) as raised:
        csload.sync(settings, **target.sync_to)

    text = str(raised.value)
    assert "token request" in text and "gave up after 10 attempts" in text, text
    target.compare(simulator, before).assert_exact()
    if target.is_lake:
        # A sync that gave up at the token endpoint may leave its empty downloads folder behind,
        # as a DuckDB sync leaves its staging folder (whether the target opened before the
        # token request failed is a matter of timing: the slow world's sync had); the next sync
        # clears it. The lake's own files are checked.
        assert_lake_tidy(target.path, downloads=True)
    secrets.scan(exception_texts(raised.value), "the exception")

    again = csload.sync(settings, **target.sync_to)

    acc = target.compare(simulator, successful_runs(simulator))
    record("beyond budget", "token endpoint down", **target.summary,
           fault=f"503 x{RETRY.max_attempts} on the token endpoint", message=text,
           **acc.fields())
    assert again.exit_code == 0
    acc.assert_exact()
    target.assert_tidy()
    secrets.scan(log_texts(caplog), "a log line")
