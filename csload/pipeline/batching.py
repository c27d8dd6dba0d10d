"""The writer's batches: runs arriving from the downloads, grouped for one load each.

One DuckDB statement over many files is much faster than one per run (it reads them in
parallel), so the writer (csload.pipeline.sync) applies ready runs together; these functions
decide how many and for how long it waits for more (`Limits.batch_linger`). Issue 17's A/B
(benchmarks/results/ab-2026-12-06.md): with `batch_linger = 0` (no waiting), a 1 M-row sync took
1.35x DuckDB's own load against 1.16x, one run of each.

The waiting is event-driven: the writer sleeps in the stream's receive until a run arrives, the
stream ends or the linger's deadline passes, and wakes at that moment (it polled every 20 ms
when that A/B was measured).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


async def batches(receive: MemoryObjectReceiveStream[T], size: int, linger: float,
                   key: Callable[[T], K], coming: Counter[K] | None = None
                   ) -> AsyncIterator[list[T]]:
    """The writer's batches, as `fill_batch` makes them, until the stream ends.

    The writer lingers for more runs only when it had to wait for the batch's first one (it
    keeps up with the downloads). When runs were already waiting, it is the bottleneck: it
    takes those and goes (on a 5 MB/s x 4 network, lingering idled it 0.25 s per batch while
    runs queued, and half a second was added to the end of the sync). `coming` counts the
    items of each key still to arrive: a batch that holds the last of its key goes at once.
    """
    carried: T | None = None
    while True:
        waited = False
        if carried is None:
            waited = receive.statistics().current_buffer_used == 0
            try:
                carried = await receive.receive()
            except anyio.EndOfStream:
                return
            if coming is not None:
                coming[key(carried)] -= 1
        batch = [carried]
        carried = await fill_batch(batch, receive, size, linger if waited else 0.0, key,
                                    coming)
        yield batch


async def fill_batch(batch: list[T], receive: MemoryObjectReceiveStream[T], size: int,
                      linger: float, key: Callable[[T], K],
                      coming: Counter[K] | None = None) -> T | None:
    """Add ready items to `batch` until it has `size`, the stream ends, none arrived for
    `linger` seconds, or `coming` expects no more of its key. An item whose `key` differs from
    the batch's is not added but returned (it starts the next batch; it is counted off
    `coming`).

    Waits in `receive.receive()` under the linger's deadline, so it wakes when an item
    arrives, the stream ends or the deadline passes, and at no other time. Cancelling that
    receive at the deadline loses no item: anyio (>= 4.4) hands an item only to a receiver with
    no cancellation pending, and does not cancel a receiver whose item has already arrived."""
    quiet_until = anyio.current_time() + linger
    own = key(batch[0])
    while len(batch) < size and (coming is None or coming[own] > 0):
        try:
            item = receive.receive_nowait()
        except anyio.EndOfStream:
            return None
        except anyio.WouldBlock:
            # Checked before waiting: with no linger left, the batch goes without yielding
            # to the loop (what is ready was taken above).
            if anyio.current_time() >= quiet_until:
                return None
            with anyio.CancelScope(deadline=quiet_until) as lingering:
                try:
                    item = await receive.receive()
                except anyio.EndOfStream:
                    return None
            if lingering.cancelled_caught:
                return None
        if coming is not None:
            coming[key(item)] -= 1
        if key(item) != own:
            return item
        batch.append(item)
        quiet_until = anyio.current_time() + linger
    return None
