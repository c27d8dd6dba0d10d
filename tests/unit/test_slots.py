"""OrderedSlots: capacity respected, freed slots go to the lowest priority, cancellation safe."""

from __future__ import annotations

import anyio
import pytest

from csload.transfer.slots import OrderedSlots


async def test_freed_slots_go_to_the_lowest_priority_not_the_first_arrival() -> None:
    slots = OrderedSlots(1)
    order: list[int] = []
    held, release = anyio.Event(), anyio.Event()

    async def holder() -> None:
        async with slots.slot((0,)):
            held.set()
            await release.wait()

    async def worker(priority: int) -> None:
        async with slots.slot((priority,)):
            order.append(priority)

    async with anyio.create_task_group() as group:
        group.start_soon(holder)
        await held.wait()
        # They arrive in this order while the slot is held: each waits before the next starts
        # (they raced a 50 ms hold, and lost it on a loaded machine).
        for priority in (5, 3, 9, 1):
            group.start_soon(worker, priority)
            await anyio.wait_all_tasks_blocked()
        release.set()
    assert order == [1, 3, 5, 9]


async def test_never_more_holders_than_slots() -> None:
    slots = OrderedSlots(3)
    inside = most = 0

    async def worker(i: int) -> None:
        nonlocal inside, most
        async with slots.slot((i % 4, i)):
            inside += 1
            most = max(most, inside)
            await anyio.sleep(0.001 * (i % 3))
            inside -= 1

    async with anyio.create_task_group() as group:
        for i in range(40):
            group.start_soon(worker, i)
    assert most == 3 and inside == 0


async def test_a_cancelled_waiter_does_not_keep_or_lose_a_slot() -> None:
    slots = OrderedSlots(1)
    got: list[str] = []
    async with slots.slot((0,)):
        with anyio.move_on_after(0.02):
            async with slots.slot((1,)):
                got.append("never")     # the slot is held by this very task
    async with slots.slot((2,)):
        got.append("after")
    assert got == ["after"]


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        OrderedSlots(0)
