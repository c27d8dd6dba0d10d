"""The fault matrix of test_rel_faults.py, run into a local Parquet lake (`parquet=ROOT`).

The cells, the knobs and the faults beyond the budget are test_rel_faults.py's own (imported,
not copied): each of the eight knobs alone, two pairs (PAIRS_DEFAULT) and all eight together by
default; every pair with --slow, as test_rel_faults.cells(slow=True) lists them.

Every cell checks what the DuckDB cells check (exit code 0; every row of every table equal to
the reference, through the manifest and as a folder-listing reader sees it: 0 lost,
0 duplicated, 0 unexpected; every request within the retry budget; the in-flight caps at the
simulator; the knob really fired; no secret in any log line or in the report), and that the
lake is tidy afterwards: every data file is one of the current version's, no staging or
download folder is left, every run's ledger status is `loaded`.

A fault beyond the budget fails only its run (recorded `failed` in the lake's ledger, none of
its rows in the lake), and the next sync completes it. By default: a part cut short every time;
every fault of test_rel_faults.BEYOND, the token endpoint outage, and the CLI cell (every knob
but the expiries, `csload sync --parquet ROOT --json`) with --slow (`slow_only`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from lakekit import assert_lake_tidy, compare_lake, lake_run_message, lake_runs
from relkit import LIMITS, RETRY, Secrets, exception_texts, is_slow, log_texts
from syncref import SESSIONS_JOB, successful_runs
from test_rel_faults import (
    BEYOND,
    KNOBS,
    Knobs,
    arm_beyond_budget,
    cell_id,
    cells,
    max_attempt,
    waits,
)

import csload
from csload.cli import main
from csload.config import Settings
from csload.errors import ApiUnavailable
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import Simulator

TARGET = "parquet"
# Two pairs run by default besides test_rel_faults' default cells (every pair with --slow): a
# part cut short whose retry meets an expired URL, and 5xx bursts while tokens expire.
PAIRS_DEFAULT = (("storage-cut", "url-expiry"), ("api-5xx", "token-expiry"))
# Beyond the budget, by default: a part cut short every time.
BEYOND_DEFAULT = ("storage-cut",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    slow = is_slow(metafunc.config)
    if "cell" in metafunc.fixturenames:
        chosen = cells(slow)
        if not slow:
            chosen = [*chosen[:-1], *PAIRS_DEFAULT, chosen[-1]]
        assert all(pair in cells(True) for pair in PAIRS_DEFAULT)
        metafunc.parametrize("cell", chosen, ids=[cell_id(c) for c in chosen])
    if "knob" in metafunc.fixturenames:
        metafunc.parametrize("knob", sorted(BEYOND) if slow else BEYOND_DEFAULT)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def test_fault_cell_into_a_lake_ends_with_the_truth(
    cell: tuple[str, ...], simulator: Simulator, settings: Settings, secrets: Secrets,
    root: Path, caplog: pytest.LogCaptureFixture, record: Callable[..., None], slow: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    knobs = Knobs(simulator, cell, slow)

    report = csload.sync(settings, parquet=root, on_event=knobs.on_event)

    everything = successful_runs(simulator)
    acc = compare_lake(root, simulator, everything)
    stats = simulator.stats
    fired = knobs.fired()
    attempts = max_attempt(caplog)
    record("faults", cell_id(cell), target=TARGET, knobs=list(cell), fired=fired,
           runs=len(everything), parts=knobs.parts_seen, api_requests=stats.api_requests,
           storage_requests=stats.storage_requests, max_attempt=attempts,
           max_api_in_flight=stats.max_api_in_flight,
           max_storage_in_flight=stats.max_storage_in_flight, **acc.fields())

    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert report.target == str(root)
    assert sorted(r.run_id for r in report.loaded) == sorted(everything)
    acc.assert_exact()
    assert set(lake_runs(root).values()) - {"source_failed"} == {"loaded"}
    assert sorted(r for r, s in lake_runs(root).items() if s == "loaded") == sorted(everything)
    assert_lake_tidy(root)
    assert all(n > 0 for n in fired.values()), fired
    if "url-expiry" in cell:
        assert knobs.advanced_at and stats.requests["get_run"] > len(everything)
    if "token-expiry" in cell:
        assert stats.tokens_issued >= 2
    if "api-429" in cell:
        assert waits(caplog, "HTTP 429") and set(waits(caplog, "HTTP 429")) == {"0.1"}
    if "storage-503" in cell:
        assert set(waits(caplog, "storage answered HTTP 503")) == {"0.1"}
    assert attempts < RETRY.max_attempts
    assert "gave up" not in caplog.text
    assert stats.max_api_in_flight <= LIMITS.api_concurrency
    assert stats.concurrency_rejections == 0
    assert 0 < stats.max_storage_in_flight <= LIMITS.download_concurrency
    secrets.scan(log_texts(caplog), "a log line")
    secrets.scan([json.dumps(report.to_json())], "the JSON report")
    secrets.check_storage(simulator)


@pytest.mark.slow_only
def test_all_faults_through_the_cli_json_report_into_a_lake(
    simulator: Simulator, settings: Settings, secrets: Secrets, tmp_path: Path, root: Path,
    child_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, record: Callable[..., None],
    slow: bool,
) -> None:
    """`csload sync --parquet ROOT --json` with every knob that needs no mid-sync hook."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "csload.toml").write_text(
        "[limits]\nmax_staged_runs = 2\n[retry]\nmax_attempts = 10\nbase_delay = 0.002\n"
        "max_delay = 0.02\nmax_retry_after = 0.06\n")
    cell = tuple(k for k in KNOBS if k not in ("url-expiry", "token-expiry"))
    knobs = Knobs(simulator, cell, slow)
    knobs.on_event(SyncEvent(kind=EventKind.PLANNED))
    env = {k: v for k, v in child_env.items() if k.startswith("CONTENTSQUARE_")}

    result = CliRunner().invoke(main, ["sync", "--parquet", str(root), "--json"], env=env,
                                catch_exceptions=False)

    everything = successful_runs(simulator)
    acc = compare_lake(root, simulator, everything)
    record("faults", "all but the expiries, through the CLI (--json)", target=TARGET,
           knobs=list(cell), fired=knobs.fired(), runs=len(everything), **acc.fields())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runsLoaded"] == len(everything) and report["exitCode"] == 0
    acc.assert_exact()
    assert_lake_tidy(root)
    assert all(n > 0 for n in knobs.fired().values()), knobs.fired()
    secrets.scan([result.stdout, result.stderr], "the CLI output")
    secrets.check_storage(simulator)


# --- a fault that outlasts the retry budget --------------------------------------------------

def test_a_fault_beyond_the_budget_fails_only_its_run_in_the_lake_and_the_next_sync_completes_it(
    knob: str, simulator: Simulator, settings: Settings, secrets: Secrets, root: Path,
    caplog: pytest.LogCaptureFixture, record: Callable[..., None],
) -> None:
    caplog.set_level(logging.DEBUG)
    target, where, label, says = arm_beyond_budget(simulator, knob)

    first = csload.sync(settings, parquet=root)

    everything = successful_runs(simulator)
    others = [r for r in everything if r != target]
    assert first.exit_code == 3
    assert [r.run_id for r in first.failed] == [target], [
        (r.run_id, r.status, r.message) for r in first.runs if r.status != "loaded"]
    assert not first.expired
    message = first.failed[0].message or ""
    assert where in message and says in message, message
    assert sorted(r.run_id for r in first.loaded) == sorted(others)
    compare_lake(root, simulator, others).assert_exact()   # nothing of the failed run
    status = lake_run_message(root, target)
    assert status is not None and status[0] == "failed" and where in status[1], status
    assert_lake_tidy(root)

    second = csload.sync(settings, parquet=root)

    acc = compare_lake(root, simulator, everything)
    record("beyond budget", knob, target=TARGET, fault=label, message=message,
           second_sync_loaded=[r.run_id for r in second.loaded], **acc.fields())
    assert second.exit_code == 0, [r.message for r in second.failed + second.expired]
    assert [r.run_id for r in second.loaded] == [target]
    acc.assert_exact()
    assert set(lake_runs(root).values()) - {"source_failed"} == {"loaded"}
    assert_lake_tidy(root)
    secrets.scan(log_texts(caplog), "a log line")
    secrets.scan([json.dumps(first.to_json()), message], "the report")
    secrets.check_storage(simulator)


@pytest.mark.slow_only
def test_a_token_endpoint_outage_beyond_the_budget_leaves_the_lake_as_it_was(
    simulator: Simulator, settings: Settings, secrets: Secrets, root: Path,
    caplog: pytest.LogCaptureFixture, record: Callable[..., None],
) -> None:
    caplog.set_level(logging.DEBUG)
    early = csload.sync(settings, parquet=root, jobs=[SESSIONS_JOB])
    assert early.exit_code == 0
    before = [r.run_id for r in early.loaded]
    simulator.faults.api_fail_path = "/v1/oauth/token"
    simulator.faults.api_fail_path_next = RETRY.max_attempts

    with pytest.raises(ApiUnavailable) as raised:
        csload.sync(settings, parquet=root)

    text = str(raised.value)
    assert "token request" in text and "gave up after 10 attempts" in text, text
    compare_lake(root, simulator, before).assert_exact()
    assert_lake_tidy(root)
    secrets.scan(exception_texts(raised.value), "the exception")

    again = csload.sync(settings, parquet=root)

    acc = compare_lake(root, simulator, successful_runs(simulator))
    record("beyond budget", "token endpoint down", target=TARGET,
           fault=f"503 x{RETRY.max_attempts} on the token endpoint", message=text,
           **acc.fields())
    assert again.exit_code == 0
    acc.assert_exact()
    assert_lake_tidy(root)
    secrets.scan(log_texts(caplog), "a log line")
