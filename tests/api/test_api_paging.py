"""Reading paginated lists to the end (csload.api.paging)."""

from __future__ import annotations

from typing import Any

import pytest

from csload.api.paging import read_all_pages
from csload.errors import ApiError


class Pages:
    """A fake list endpoint serving `total` items, recording the (page, limit) asked for."""

    def __init__(self, total: int) -> None:
        self.items = list(range(total))
        self.calls: list[tuple[int, int]] = []

    async def __call__(self, page: int, limit: int) -> list[Any]:
        self.calls.append((page, limit))
        return self.items[(page - 1) * limit : page * limit]


@pytest.mark.parametrize(
    ("total", "limit", "pages"),
    # A short first page is confirmed by an empty second one (it could be a clamped page);
    # after a full first page, a shorter page ends the list.
    [(0, 100, 1), (5, 100, 2), (99, 100, 2), (100, 100, 2), (250, 100, 3), (7, 2, 4)],
)
async def test_reads_until_the_end(total: int, limit: int, pages: int) -> None:
    fake = Pages(total)
    assert await read_all_pages(fake, limit=limit) == list(range(total))
    assert fake.calls == [(n, limit) for n in range(1, pages + 1)]


async def test_default_limit_is_100_and_pages_start_at_1() -> None:
    fake = Pages(150)
    await read_all_pages(fake)
    assert fake.calls == [(1, 100), (2, 100)]


async def test_a_server_ignoring_page_is_an_error_not_a_loop() -> None:
    async def same_page(page: int, limit: int) -> list[Any]:
        return list(range(limit))

    with pytest.raises(ApiError, match="page 2 repeats page 1"):
        await read_all_pages(same_page, limit=3, what="jobs")


async def test_page_ceiling() -> None:
    async def endless(page: int, limit: int) -> list[Any]:
        return [page] * limit

    with pytest.raises(ApiError, match="more than 5 pages"):
        await read_all_pages(endless, limit=2, max_pages=5)


async def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        await read_all_pages(Pages(1), limit=0)


class ClampingPages(Pages):
    """A list endpoint that serves at most `size` items a page, whatever the limit asked."""

    def __init__(self, total: int, size: int) -> None:
        super().__init__(total)
        self.size = size

    async def __call__(self, page: int, limit: int) -> list[Any]:
        self.calls.append((page, limit))
        served = min(limit, self.size)
        return self.items[(page - 1) * served : page * served]


@pytest.mark.parametrize(
    ("total", "pages", "learnt"),
    # 50 items in one page of 50 cannot tell a clamp from the end of the list: nothing learnt.
    [(0, 1, None), (30, 2, None), (50, 2, None), (51, 2, 50), (123, 3, 50), (150, 4, 50)],
)
async def test_a_clamped_page_size_is_learnt_and_nothing_is_lost(
    total: int, pages: int, learnt: int | None
) -> None:
    fake = ClampingPages(total, 50)
    seen: list[int] = []
    assert await read_all_pages(fake, limit=100, on_clamped=seen.append) == list(range(total))
    assert fake.calls == [(n, 100) for n in range(1, pages + 1)]
    assert seen == ([] if learnt is None else [learnt])


async def test_pages_of_varying_length_are_read_until_an_empty_page() -> None:
    sizes = [3, 5, 2, 4]
    batches = [list(range(sum(sizes[:i]), sum(sizes[: i + 1]))) for i in range(len(sizes))]

    async def uneven(page: int, limit: int) -> list[Any]:
        return batches[page - 1] if page <= len(batches) else []

    assert await read_all_pages(uneven, limit=10) == list(range(sum(sizes)))


async def test_a_short_page_repeated_is_an_error_not_a_truncated_list() -> None:
    async def same_short_page(page: int, limit: int) -> list[Any]:
        return [1, 2, 3]

    with pytest.raises(ApiError, match="page 2 repeats page 1"):
        await read_all_pages(same_short_page, limit=100, what="runs")
