"""Keeping every download connection busy to the end: idle slots take over half of a download.

With C connections and parts of a few MB, the last parts of a sync finish one after the other
while the other connections idle (a 5 MB/s x 4 link delivered 16.4 MB/s of its 20 over a whole
sync: benchmarks/bench_slow_network.py). Here a download slot with no part waiting for it
takes over the second half of the earliest download (in plan order) that has time left: a
ranged GET (`Range: bytes=a-b`, which S3 serves on a pre-signed GET URL) writes those bytes
into the same staging file at their offset, while the first stream stops at byte a. A piece
can be split again. The split point leaves both ends finishing together, the new request's
latency included (as the first stream saw it). The earliest download goes first so that runs
still complete in plan order, each loading while the later ones download: helping the download
with the most time left had the last two runs finish together, both loaded after the last byte.

Only downloads that are not gzip-verified while streaming are split (the sync's: its load
reads the stream, csload.transfer.stage), as a verifier needs the bytes in order. A piece that
fails, or a storage host that ignores the Range header, fails the part's attempt: it is
retried whole by download_part's retry loop, so a split never weakens what a download checks.
A piece's GET has storage's minimum rate as any GET (csload.transfer.guard); it cannot pass
`max_part_bytes`: only a part with an announced length is split, that length was checked
against the cap, and a stream drops bytes past its `stop`.

On a local network nothing is split (issue 17's A/B, benchmarks/results/ab-2026-12-06.md:
1.14x DuckDB's own load without it against 1.16x with it, within the noise): what it buys is
the slow network's (bench_slow_network.py, measured 2026-11-26, not re-measured since).

An idle helper waits for events, not on a timer (it polled every 50 ms when those were
measured): a stream's first bytes wake it, and otherwise it sleeps until the earliest moment a
download could be worth splitting were no more bytes to come (more bytes only put that moment
off); then it queues for a download slot behind every part.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from csload.redact import redact_url
from csload.transfer.slots import OrderedSlots

# A split must leave at least this much time on the stream being split (each new request
# pays the storage latency once), and at least this many bytes to each side.
MIN_SECONDS_LEFT = 0.5
MIN_PIECE_BYTES = 256 * 1024
# Before this much of a stream has arrived, its rate is not known well enough to split it
# (above 0: a rate is measured over some time).
MIN_SECONDS_SEEN = 0.2
# Helpers wait behind every part for a slot: whole parts always go first.
HELPER_PRIORITY = (2**62,)


class PieceAbandoned(Exception):
    """The part's attempt failed elsewhere: this piece was stopped (internal)."""


@dataclass(eq=False)
class Piece:
    """Bytes [first, end) of a part, split off a stream, for a helper to fetch."""

    download: PartDownload
    first: int
    end: int
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None
    scope: anyio.CancelScope | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done.set()


@dataclass(eq=False)
class Stream:
    """One GET writing bytes [start, stop) of a part; `pos` is the next byte it writes.
    A split lowers `stop`."""

    download: PartDownload
    start: int
    stop: int
    requested_at: float
    splitter: Splitter
    pos: int = 0
    first_byte_at: float | None = None

    def __post_init__(self) -> None:
        self.pos = self.start

    def wrote(self, nbytes: int, now: float) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = now
        had_rate = self.pos > self.start
        self.pos += nbytes
        if not had_rate and self.pos > self.start:
            self.splitter.measurable(self)

    def room(self) -> int:
        """Bytes this stream may still write (0 once it reached `stop`)."""
        return max(0, self.stop - self.pos)

    def splittable_from(self) -> float | None:
        """The earliest time at which this stream is worth splitting if no more bytes arrive:
        seen for MIN_SECONDS_SEEN, and MIN_SECONDS_LEFT left at its rate so far. None while it
        has no rate yet, or too few bytes left to split (for good: its `room` only shrinks).
        More bytes only put this time off: the rate rises and less is left."""
        if self.first_byte_at is None or self.pos <= self.start:
            return None
        left = self.room()
        if left < 2 * MIN_PIECE_BYTES:
            return None
        # left / rate >= MIN_SECONDS_LEFT, with rate = seen / (now - first_byte_at)
        seen = self.pos - self.start
        return self.first_byte_at + max(MIN_SECONDS_SEEN, MIN_SECONDS_LEFT * seen / left)

    def close(self) -> None:
        """No more splits of this stream (it ended, or failed)."""
        self.splitter.discard(self)

    async def take(self, chunks: AsyncIterator[bytes],
                   write: Callable[[bytes, int], Awaitable[object]]) -> None:
        """Write `chunks` with `write(data, offset)` until the stream reaches its `stop`,
        which a split may lower meanwhile (the rest is then a helper's)."""
        async for chunk in chunks:
            offset = self.pos
            data = chunk[: self.room()]
            # Counted before it is written: a split made meanwhile starts after it.
            self.wrote(len(data), anyio.current_time())
            if data:
                await write(data, offset)
            if self.room() == 0:
                return


@dataclass(eq=False)
class PartDownload:
    """A part whose bytes may come from several GETs: its staging file, URL and pieces."""

    url: str = field(repr=False)    # signed: shown only through redact_url
    path: Path
    size: int
    label: str
    ids: dict[str, int | None]
    pieces: list[Piece] = field(default_factory=list)
    order: int | None = None   # when the splitter first saw it (downloads start in plan order)

    def __repr__(self) -> str:
        return (f"PartDownload({self.label}, url={redact_url(self.url)!r}, size={self.size}, "
                f"pieces={len(self.pieces)})")

    async def wait_pieces(self) -> None:
        """Wait for every piece split off (more may be split while waiting); raise the first
        failure, after stopping the others."""
        index = 0
        while index < len(self.pieces):
            piece = self.pieces[index]
            await piece.done.wait()
            if piece.error is not None:
                await self.abandon()
                raise piece.error
            index += 1

    async def abandon(self) -> None:
        """Stop every piece and wait until none writes to the file any more."""
        with anyio.CancelScope(shield=True):
            for piece in self.pieces:
                if piece.scope is not None:
                    piece.scope.cancel()
                elif not piece.done.is_set():
                    piece.finish(PieceAbandoned())
            for piece in self.pieces:
                await piece.done.wait()


FetchPiece = Callable[[Piece, "Splitter"], Awaitable[None]]


class Splitter:
    """The streams of a sync's downloads, and the helpers that split them."""

    def __init__(self) -> None:
        self._streams: set[Stream] = set()
        self.enabled = True
        self._opened = 0
        # Set (and replaced) when a stream gets its first bytes: idle helpers wait on it.
        # Made by the first helper to wait, so that a Splitter can be made outside a loop.
        self._measurable: anyio.Event | None = None

    def open(self, download: PartDownload, start: int, stop: int, requested_at: float
             ) -> Stream:
        if download.order is None:
            download.order = self._opened
            self._opened += 1
        stream = Stream(download, start, stop, requested_at, self)
        if self.enabled:
            self._streams.add(stream)
        return stream

    def discard(self, stream: Stream) -> None:
        self._streams.discard(stream)

    def measurable(self, stream: Stream) -> None:
        """`stream` has a rate now: wake the idle helpers to time its split."""
        if stream in self._streams and self._measurable is not None:
            self._measurable.set()
            self._measurable = None

    def disable(self) -> None:
        """Storage does not serve ranges: split nothing more."""
        self.enabled = False
        self._streams.clear()

    def take(self, now: float) -> Piece | None:
        """Split the stream of the earliest download worth it (enough time and bytes left;
        downloads are numbered as they start, in plan order): its second part becomes a Piece
        (registered on its download) and the stream stops where it starts."""
        best: tuple[int, Stream] | None = None
        for stream in self._streams:
            # The rule the idle helpers wait by (until_worth_splitting), so that one woken
            # for a stream finds it here.
            ready_at = stream.splittable_from()
            if ready_at is None or ready_at > now:
                continue
            order = stream.download.order or 0
            if best is None or order < best[0]:
                best = (order, stream)
        if best is None:
            return None
        _, stream = best
        assert stream.first_byte_at is not None   # it has a rate (splittable_from)
        # now - first_byte_at >= MIN_SECONDS_SEEN > 0
        rate = (stream.pos - stream.start) / (now - stream.first_byte_at)
        latency = stream.first_byte_at - stream.requested_at
        left = stream.room()
        # Both ends finish together: the stream writes `keep` bytes while the piece waits
        # `latency` and then writes `left - keep` at the same rate.
        keep = int((left + latency * rate) / 2)
        keep = max(MIN_PIECE_BYTES, min(left - MIN_PIECE_BYTES, keep))
        piece = Piece(stream.download, stream.pos + keep, stream.stop)
        stream.stop = piece.first
        stream.download.pieces.append(piece)
        return piece

    async def help(self, slots: OrderedSlots, fetch: FetchPiece) -> None:
        """One helper: whenever a download is worth splitting and a slot is free with no part
        waiting for it, split the download and fetch the piece; until cancelled."""
        while True:
            await self.until_worth_splitting()
            async with slots.slot(HELPER_PRIORITY):
                # Bytes that came while it waited for the slot may have put the split off:
                # take() then finds none, and the helper waits again.
                piece = self.take(anyio.current_time())
                if piece is not None:
                    await self._fetch(piece, fetch)

    async def until_worth_splitting(self) -> None:
        """Return once some stream is worth splitting (take() would split it now). Sleeps
        until the earliest time one could be, or until a stream gets its first bytes, whichever
        comes first; with no stream to split, until a stream gets its first bytes."""
        while True:
            soonest = min((at for stream in self._streams
                           if (at := stream.splittable_from()) is not None), default=math.inf)
            if soonest <= anyio.current_time():
                return
            if self._measurable is None:
                self._measurable = anyio.Event()
            news = self._measurable
            with anyio.CancelScope(deadline=soonest):
                await news.wait()

    async def _fetch(self, piece: Piece, fetch: FetchPiece) -> None:
        """Fetch a piece; its outcome goes to its download (whose attempt then fails), never
        out of the helper."""
        with anyio.CancelScope() as scope:
            piece.scope = scope
            try:
                await fetch(piece, self)
            except Exception as exc:
                piece.finish(exc)
            else:
                piece.finish()
            finally:
                if not piece.done.is_set():   # cancelled: by abandon(), or the sync's end
                    piece.finish(PieceAbandoned())
