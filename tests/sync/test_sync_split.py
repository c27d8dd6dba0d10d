"""Idle download connections fetch the end of slow downloads (csload.transfer.ranges), over real
HTTP from the simulator with its bandwidth cap: the tables still equal the truth, the in-flight
cap holds, and a piece that fails, or a storage host that ignores ranges, costs a retry only.
An idle helper waits on events, not on a timer (on virtual time, tests/support/virtual_time.py).

The split thresholds are lowered (the test world's parts are tens of KB, not MB).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

import csload
from csload.config import Limits, Settings
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import Simulator
from csload.transfer import ranges
from csload.transfer.ranges import PartDownload, Piece, Splitter
from csload.transfer.slots import OrderedSlots
from tests.support.syncref import assert_db_matches, expected_tables, successful_runs
from tests.support.virtual_time import clock_jumps, run_on_virtual_time

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


# --- the idle helpers' waiting ----------------------------------------------------------------


class _WatchedSplitter(Splitter):
    """A Splitter that notes when its helpers look for a download to split."""

    def __init__(self) -> None:
        super().__init__()
        self.looked: list[float] = []

    def take(self, now: float) -> Piece | None:
        self.looked.append(now)
        return super().take(now)


async def _one_slow_download(part_holds_slot_until: float = 0.0
                             ) -> tuple[list[float], list[float], list[float]]:
    """One idle helper, one 4 MB download that starts at 5.0 s (its first byte at once), has
    3 MB by 5.1 s, then nothing (a stall); one download slot, held by a part until
    `part_holds_slot_until`. Returns when the helper looked for a split, when it fetched
    pieces, and when the loop woke for a timer (virtual seconds)."""
    splitter = _WatchedSplitter()
    slots = OrderedSlots(1)
    fetched: list[float] = []

    async def fetch(piece: Piece, _splitter: Splitter) -> None:
        fetched.append(anyio.current_time())

    async def part() -> None:
        async with slots.slot((0,)):
            await anyio.sleep(part_holds_slot_until)

    async with anyio.create_task_group() as group:
        group.start_soon(part)
        await anyio.sleep(0)   # the part has its slot before the helper starts
        group.start_soon(splitter.help, slots, fetch)
        await anyio.sleep(5.0)
        stream = splitter.open(download(4_000_000), 0, 4_000_000, anyio.current_time())
        stream.wrote(1, anyio.current_time())
        await anyio.sleep(0.1)
        stream.wrote(2_999_999, anyio.current_time())
        await anyio.sleep(10.0)
        group.cancel_scope.cancel()
    return splitter.looked, fetched, clock_jumps()


def test_an_idle_helper_wakes_only_when_a_split_may_be_due() -> None:
    # Until the first byte nothing can be split, and the helper sleeps (a polling helper woke
    # every 50 ms). The first byte wakes it; 3 MB by 5.1 s leave 1 MB, under 0.1 s at that
    # rate, so it sleeps again until the stall has made that 0.5 s (MIN_SECONDS_LEFT): at
    # 6.5 s, 3 MB over 1.5 s leave 1 MB for 0.5 s. It looks then, once, and splits (the
    # halves are too small to split again).
    looked, fetched, wakeups = run_on_virtual_time(_one_slow_download)
    assert looked == pytest.approx([6.5])
    assert fetched == pytest.approx([6.5])
    # The loop woke for the test's own timers (5.0, 5.1, 15.1), the helper's first deadline
    # (5.2 s, MIN_SECONDS_SEEN, put off by the 3 MB) and the split: nothing else.
    assert wakeups == pytest.approx([5.0, 5.1, 5.2, 6.5, 15.1])


def test_a_helper_waiting_behind_a_part_splits_the_moment_the_slot_frees() -> None:
    # The split is due at 6.5 s but the only slot is a part's until 7.0 s: the helper queues
    # behind it (parts go first) and splits when the part releases the slot, not later.
    looked, fetched, _ = run_on_virtual_time(_one_slow_download, 7.0)
    assert looked == pytest.approx([7.0])
    assert fetched == pytest.approx([7.0])
