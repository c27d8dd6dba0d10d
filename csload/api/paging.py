"""Reading a paginated list endpoint to its end. No I/O of its own: it calls `fetch_page`.

The Export API's lists take `page` (1-based) and `limit` and carry no total and no next link
(contract section 3), so the only end marker is a page shorter than `limit`. A server that
ignores `page` and serves the same full page forever would loop; two guards stop that: an
identical page in a row, and a hard page ceiling. Both raise ApiError rather than return a
silently truncated or duplicated list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from csload.errors import ApiError

DEFAULT_PAGE_SIZE = 100
MAX_PAGES = 10_000

FetchPage = Callable[[int, int], Awaitable[list[Any]]]


async def read_all_pages(
    fetch_page: FetchPage,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    max_pages: int = MAX_PAGES,
    what: str = "list",
) -> list[Any]:
    """Every item of every page: `fetch_page(page, limit)` until a page shorter than `limit`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    items: list[Any] = []
    previous: list[Any] | None = None
    for page in range(1, max_pages + 1):
        batch = await fetch_page(page, limit)
        if len(batch) < limit:
            items.extend(batch)
            return items
        if batch == previous:
            raise ApiError(
                f"{what}: page {page} repeats page {page - 1}; the server seems to ignore `page`"
            )
        items.extend(batch)
        previous = batch
    raise ApiError(f"{what}: more than {max_pages} pages of {limit}; giving up")
