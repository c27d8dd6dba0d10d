"""The writer's batches (csload.pipeline.batching.batches): runs arriving in quick succession load
together; a run that arrives later than the linger waits for the next batch; none is lost. The
writer waits on events, not on a timer: it wakes when a run arrives or the linger ends.

Each case runs on virtual time (tests/support/virtual_time.py): the arrivals, the linger and the
writer's work are timers on the loop's own clock, so the times asserted are the ones scheduled,
whatever the machine's load, and no case sleeps for real."""

from __future__ import annotations

import functools
from collections import Counter

import anyio
import pytest

from csload.pipeline.batching import batches as _batches
from tests.support.virtual_time import clock_jumps, run_on_virtual_time


def gather(arrivals: list[float], size: int, linger: float,
                 tables: str = "", busy: float = 0.0,
                 started: list[float] | None = None, planned: bool = False,
                 wakeups: list[float] | None = None) -> list[list[int]]:
    """Send item i after arrivals[i] seconds (from the start); batch them like the writer
    (item i belongs to table tables[i], if given), which spends `busy` seconds on each batch
    (the seconds at which it got each batch go to `started`). With `planned`, the writer
    knows how many items of each table are coming, as the sync's plan tells it. The times at
    which the loop woke for a timer go to `wakeups`. Seconds are the virtual clock's."""
    return run_on_virtual_time(functools.partial(
        _gather, arrivals, size, linger, tables, busy, started, planned, wakeups))


async def _gather(arrivals: list[float], size: int, linger: float, tables: str, busy: float,
                  started: list[float] | None, planned: bool,
                  wakeups: list[float] | None) -> list[list[int]]:
    send, receive = anyio.create_memory_object_stream[int](len(arrivals) + 1)
    batches: list[list[int]] = []
    begin = anyio.current_time()

    async def producer() -> None:
        async with send:
            start = anyio.current_time()
            for i, at in enumerate(arrivals):
                # Runs due at the same time are sent together, with no turn of the loop in
                # between: the writer, woken by the first, finds the others waiting.
                if i == 0 or at != arrivals[i - 1]:
                    await anyio.sleep(max(0.0, start + at - anyio.current_time()))
                send.send_nowait(i)

    def table(item: int) -> str:
        return tables[item] if tables else ""

    async def writer() -> None:
        async with receive:
            coming = Counter(table(i) for i in range(len(arrivals))) if planned else None
            async for batch in _batches(receive, size, linger, key=table, coming=coming):
                batches.append(batch)
                if started is not None:
                    started.append(anyio.current_time() - begin)
                await anyio.sleep(busy)

    async with anyio.create_task_group() as group:
        group.start_soon(producer)
        group.start_soon(writer)
    if wakeups is not None:
        wakeups.extend(clock_jumps())
    return batches


def test_runs_arriving_in_quick_succession_load_together() -> None:
    assert gather([0.0, 0.02, 0.04, 0.06, 0.08], size=8, linger=0.3) == [[0, 1, 2, 3, 4]]


def test_a_batch_holds_at_most_its_size() -> None:
    batches = gather([0.0] * 7, size=3, linger=0.3)
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_late_run_is_not_waited_for_and_not_lost() -> None:
    batches = gather([0.0, 0.02, 0.6, 0.62], size=8, linger=0.15)
    assert batches == [[0, 1], [2, 3]]


def test_with_no_linger_only_what_is_ready_goes_in() -> None:
    batches = gather([0.0, 0.2, 0.4], size=8, linger=0.0)
    assert batches == [[0], [1], [2]]


def test_a_batch_holds_one_table_and_the_next_table_starts_the_next_batch() -> None:
    batches = gather([0.0] * 6, size=8, linger=0.3, tables="sssvvv")
    assert batches == [[0, 1, 2], [3, 4, 5]]


def test_a_writer_that_runs_behind_takes_what_waits_without_lingering() -> None:
    # Busy 0.6 s with its first batch, the writer finds runs 1 and 2 waiting: it takes them
    # at once (lingering would idle it while the downloads are ahead).
    started: list[float] = []
    batches = gather([0.0, 0.5, 0.55, 1.3], size=8, linger=0.2, busy=0.6,
                           started=started)
    assert batches == [[0], [1, 2], [3]]
    assert 0.18 <= started[0] < 0.35   # waited for run 0, then lingered
    assert started[1] < 0.8 + 0.1       # not 0.8 + the linger
    assert started[2] < 1.4 + 0.1


def test_a_batch_holding_every_planned_run_of_its_table_goes_without_lingering() -> None:
    # Sessions 0-2 arrive by 0.04 s, the first pageview run only at 0.4 s: knowing that no
    # more sessions runs are coming, the writer starts at once instead of after the linger.
    started: list[float] = []
    batches = gather([0.0, 0.02, 0.04, 0.4], size=8, linger=0.3, tables="sssv",
                           started=started, planned=True)
    assert batches == [[0, 1, 2], [3]]
    assert started[0] < 0.04 + 0.1      # not 0.04 + the linger (0.34 s)
    # Without the plan's counts the same arrivals wait out the linger.
    started.clear()
    assert gather([0.0, 0.02, 0.04, 0.4], size=8, linger=0.3, tables="sssv",
                        started=started) == [[0, 1, 2], [3]]
    assert started[0] >= 0.3


def test_planned_counts_change_no_batch_when_runs_arrive_out_of_table_order() -> None:
    # A pageview run finishing before the last sessions run still closes the sessions batch
    # and starts its own; every run arrives in exactly one batch.
    batches = gather([0.0, 0.01, 0.02, 0.03], size=8, linger=0.2, tables="svsv",
                           planned=True)
    assert sorted(i for batch in batches for i in batch) == [0, 1, 2, 3]
    assert all(len({"svsv"[i] for i in batch}) == 1 for batch in batches)


# --- waiting on events, not on a timer -------------------------------------------------------


def test_a_lingering_writer_wakes_only_when_the_linger_ends() -> None:
    # Nothing arrives after run 0: the only timers are the linger's deadline (0.3 s) and the
    # producer's next arrival (1.0 s). A writer polling for runs would wake every few ms.
    started: list[float] = []
    wakeups: list[float] = []
    batches = gather([0.0, 1.0], size=8, linger=0.3, started=started, wakeups=wakeups)
    assert batches == [[0], [1]]
    assert started[0] == pytest.approx(0.3)
    assert wakeups == pytest.approx([0.3, 1.0])


def test_a_run_joins_the_batch_the_moment_it_arrives_and_restarts_the_linger() -> None:
    # Run 1 arrives at 0.013 s: taken then (a poll would take it at its next round, and
    # count the linger from there), the batch goes 0.3 s later, at 0.313 s.
    started: list[float] = []
    wakeups: list[float] = []
    batches = gather([0.0, 0.013, 1.0], size=8, linger=0.3, started=started,
                     wakeups=wakeups)
    assert batches == [[0, 1], [2]]
    assert started[0] == pytest.approx(0.313, abs=1e-9)
    assert wakeups == pytest.approx([0.013, 0.313, 1.0])


@pytest.mark.parametrize("arrivals", [
    [0.0, 0.3],                  # run 1 comes as the first linger ends
    [0.0, 0.1, 0.4],             # run 2 comes as the linger restarted by run 1 ends
    [0.0, 0.3, 0.3, 0.6, 0.9],   # several at once, each at a deadline
])
def test_a_run_arriving_exactly_as_the_linger_ends_is_not_lost(arrivals: list[float]) -> None:
    # The writer's receive is cancelled at the deadline while the run is being sent: the run
    # goes in this batch or starts the next, exactly once either way.
    batches = gather(arrivals, size=8, linger=0.3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(arrivals)))
