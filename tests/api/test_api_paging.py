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
    [(0, 100, 1), (5, 100, 1), (99, 100, 1), (100, 100, 2), (250, 100, 3), (7, 2, 4)],
)
async def test_reads_until_a_short_page(total: int, limit: int, pages: int) -> None:
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
