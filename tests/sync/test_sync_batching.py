"""The writer's batches (csload.pipeline._batches): runs arriving in quick succession load
together; a run that arrives later than the linger waits for the next batch; none is lost."""

from __future__ import annotations

import anyio

from csload.pipeline import _batches


async def gather(arrivals: list[float], size: int, linger: float,
                 tables: str = "", busy: float = 0.0,
                 started: list[float] | None = None) -> list[list[int]]:
    """Send item i after arrivals[i] seconds (from the start); batch them like the writer
    (item i belongs to table tables[i], if given), which spends `busy` seconds on each batch
    (the seconds at which it got each batch go to `started`)."""
    send, receive = anyio.create_memory_object_stream[int](len(arrivals) + 1)
    batches: list[list[int]] = []
    begin = anyio.current_time()

    async def producer() -> None:
        async with send:
            start = anyio.current_time()
            for i, at in enumerate(arrivals):
                await anyio.sleep(max(0.0, start + at - anyio.current_time()))
                await send.send(i)

    def table(item: int) -> str:
        return tables[item] if tables else ""

    async def writer() -> None:
        async with receive:
            async for batch in _batches(receive, size, linger, key=table):
                batches.append(batch)
                if started is not None:
                    started.append(anyio.current_time() - begin)
                await anyio.sleep(busy)

    async with anyio.create_task_group() as group:
        group.start_soon(producer)
        group.start_soon(writer)
    return batches


async def test_runs_arriving_in_quick_succession_load_together() -> None:
    assert await gather([0.0, 0.02, 0.04, 0.06, 0.08], size=8, linger=0.3) == [[0, 1, 2, 3, 4]]


async def test_a_batch_holds_at_most_its_size() -> None:
    batches = await gather([0.0] * 7, size=3, linger=0.3)
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_late_run_is_not_waited_for_and_not_lost() -> None:
    batches = await gather([0.0, 0.02, 0.6, 0.62], size=8, linger=0.15)
    assert batches == [[0, 1], [2, 3]]


async def test_with_no_linger_only_what_is_ready_goes_in() -> None:
    batches = await gather([0.0, 0.2, 0.4], size=8, linger=0.0)
    assert batches == [[0], [1], [2]]


async def test_a_batch_holds_one_table_and_the_next_table_starts_the_next_batch() -> None:
    batches = await gather([0.0] * 6, size=8, linger=0.3, tables="sssvvv")
    assert batches == [[0, 1, 2], [3, 4, 5]]


async def test_a_writer_that_runs_behind_takes_what_waits_without_lingering() -> None:
    # Busy 0.6 s with its first batch, the writer finds runs 1 and 2 waiting: it takes them
    # at once (lingering would idle it while the downloads are ahead).
    started: list[float] = []
    batches = await gather([0.0, 0.5, 0.55, 1.3], size=8, linger=0.2, busy=0.6,
                           started=started)
    assert batches == [[0], [1, 2], [3]]
    assert 0.18 <= started[0] < 0.35   # waited for run 0, then lingered
    assert started[1] < 0.8 + 0.1       # not 0.8 + the linger
    assert started[2] < 1.4 + 0.1
