"""Idle download connections fetch the end of slow downloads (csload.transfer.ranges), over real
HTTP from the simulator with its bandwidth cap: the tables still equal the truth, the in-flight
cap holds, and a piece that fails, or a storage host that ignores ranges, costs a retry only.

The split thresholds are lowered (the test world's parts are tens of KB, not MB).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

import csload
from csload.config import Limits, Settings
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import Simulator
from csload.transfer import ranges
from csload.transfer.ranges import PartDownload, Splitter
from tests.sync.syncref import assert_db_matches, expected_tables, successful_runs

CONCURRENCY = 3


@pytest.fixture
def slow(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setattr(ranges, "MIN_SECONDS_LEFT", 0.05)
    monkeypatch.setattr(ranges, "MIN_SECONDS_SEEN", 0.02)
    monkeypatch.setattr(ranges, "MIN_PIECE_BYTES", 2048)
    simulator.faults.bandwidth = 30_000   # bytes/s per download: a part takes ~0.2-0.8 s
    return simulator


def sync(settings: Settings, db_path: Path) -> csload.SyncReport:
    limits = Limits(download_concurrency=CONCURRENCY, chunk_size=4096)
    return csload.sync(replace(settings, limits=limits), db=db_path)


def test_idle_connections_fetch_the_end_of_slow_downloads(
    slow: Simulator, settings: Settings, db_path: Path
) -> None:
    report = sync(settings, db_path)

    assert report.exit_code == 0, [r.message for r in report.failed]
    everything = successful_runs(slow)
    assert_db_matches(db_path, expected_tables(slow, everything))
    stats = slow.stats
    assert stats.storage_range_requests > 0
    assert stats.max_storage_in_flight <= CONCURRENCY
    # Pieces do not fetch again what their streams had: a stream stops at its split point
    # (storage may have sent a little past it by then).
    total = sum(len(b) for r in everything
                for b in slow.part_bodies(slow.run(r).job_id, r, compressed=True))
    assert total <= stats.storage_bytes_sent <= total * 1.1


def test_cut_pieces_are_retried_with_their_part_and_the_tables_are_exact(
    slow: Simulator, settings: Settings, db_path: Path
) -> None:
    slow.faults.storage_cut_rate = 0.15

    report = sync(settings, db_path)

    assert report.exit_code == 0, [r.message for r in report.failed]
    assert_db_matches(db_path, expected_tables(slow, successful_runs(slow)))
    assert slow.stats.faults["cut"] > 0 and slow.stats.storage_range_requests > 0
    assert slow.stats.max_storage_in_flight <= CONCURRENCY


def test_storage_that_ignores_ranges_stops_the_splitting_after_one_retry(
    slow: Simulator, settings: Settings, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow.config.variants.storage_ignores_ranges = True
    caplog.set_level(logging.WARNING)

    report = sync(settings, db_path)

    assert report.exit_code == 0, [r.message for r in report.failed]
    assert_db_matches(db_path, expected_tables(slow, successful_runs(slow)))
    assert slow.stats.storage_range_requests == 0
    ignored = [m for m in caplog.messages if "storage ignored a Range request" in m]
    assert 1 <= len(ignored) <= CONCURRENCY - 1   # helpers already fetching when it showed


# --- the split itself ---------------------------------------------------------------------


def download(size: int) -> PartDownload:
    return PartDownload("https://storage.example/p", Path("/nonexistent"), size, "part", {})


def test_the_split_leaves_both_ends_finishing_together() -> None:
    splitter = Splitter()
    stream = splitter.open(download(10_000_000), 0, 10_000_000, requested_at=0.0)
    stream.wrote(1, now=0.1)                  # first byte after 0.1 s: the latency
    stream.wrote(999_999, now=1.1)            # then 1 MB/s
    piece = splitter.take(now=1.1)
    assert piece is not None and stream.stop == piece.first and piece.end == 10_000_000
    # 9 MB left: the stream keeps (9 MB + 0.1 s x 1 MB/s) / 2 and the piece has the rest.
    assert piece.first == 1_000_000 + 4_550_000
    assert stream.download.pieces == [piece]
    # The piece's own stream can be split again; a stream near its end cannot.
    stream.wrote(4_549_000, now=5.6)
    assert splitter.take(now=5.6) is None


def test_the_earliest_download_worth_splitting_is_split_first() -> None:
    # Runs then complete in plan order and each loads while later ones download; splitting
    # the one with most time left finished the last two runs together, both loaded at the end.
    splitter = Splitter()
    first, second, third = (splitter.open(download(n), 0, n, requested_at=0.0)
                            for n in (10_000_000, 20_000_000, 2_000_000))
    for stream in (first, second, third):
        stream.wrote(1, now=0.1)
        stream.wrote(999_999, now=1.1)        # 1 MB/s each: second has the most time left
    third.wrote(700_000, now=1.1)             # 300 kB left: under 2 x MIN_PIECE_BYTES
    piece = splitter.take(now=1.1)
    assert piece is not None and piece.download is first.download
    first.wrote(first.room() - 300_000, now=2.0)   # first: too little left now
    piece = splitter.take(now=2.0)
    assert piece is not None and piece.download is second.download


def test_nothing_is_split_too_early_too_small_or_once_ranges_are_refused() -> None:
    splitter = Splitter()
    fresh = splitter.open(download(10_000_000), 0, 10_000_000, requested_at=0.0)
    fresh.wrote(100_000, now=0.15)
    assert splitter.take(now=0.16) is None    # not seen long enough to know its rate
    small = Splitter()
    tiny = small.open(download(400_000), 0, 400_000, requested_at=0.0)
    tiny.wrote(10_000, now=1.0)
    assert small.take(now=1.0) is None        # halves under MIN_PIECE_BYTES
    fresh.wrote(100_000, now=1.0)
    splitter.disable()
    assert splitter.take(now=2.0) is None


def test_every_storage_fault_and_expiring_urls_while_splitting_still_give_exact_tables(
    slow: Simulator, settings: Settings, db_path: Path
) -> None:
    # Pieces meet 503s, cut bodies, a truncated object (a 416 or a shorter range) and URLs
    # that expire mid-download (a 403 on a piece fails its part's attempt; the part gets
    # fresh URLs as any part does).
    faults = slow.faults
    faults.storage_503_rate = faults.storage_cut_rate = faults.storage_truncate_rate = 0.08
    slow.config.url_lifetime = 60
    parts_seen = 0

    def on_event(event: SyncEvent) -> None:
        nonlocal parts_seen
        if event.kind is EventKind.PART_DOWNLOADED:
            parts_seen += 1
            if parts_seen in (3, 8):
                slow.advance(61)   # every URL handed out so far expires

    limits = Limits(download_concurrency=CONCURRENCY, chunk_size=4096)
    report = csload.sync(replace(settings, limits=limits), db=db_path, on_event=on_event)

    assert report.exit_code == 0, [r.message for r in report.failed + report.expired]
    assert_db_matches(db_path, expected_tables(slow, successful_runs(slow)))
    assert slow.stats.storage_range_requests > 0
    assert slow.stats.max_storage_in_flight <= CONCURRENCY
    assert sum(slow.stats.faults[k] for k in ("slowdown", "cut", "truncate")) > 0
