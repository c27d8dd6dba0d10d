"""Reading a paginated list endpoint to its end. No I/O of its own: it calls `fetch_page`.

The Export API's lists take `page` (1-based) and `limit` and carry no total and no next link
(contract section 3). The real page size is unknown (section 9, point 6): a server that clamps
`limit=100` to 50 answers a full page of 50, and a client that stops at the first page shorter
than its `limit` silently loses the rest. So a short page alone never ends a list:

- an empty page ends it;
- the page size is learnt from the first full page: a first page of `limit` items shows
  the server honours `limit`; a first page of n < `limit` items that is followed by more
  shows the server clamps to n (reported through `on_clamped`). Once the page size is
  known, a page shorter than it ends the list (this saves the empty page's request);
- a page longer than the page size learnt makes it unreliable: the list is then read until
  an empty page.

A page holding more items than the `limit` asked for is an ApiError: no server has a reason to
send more, and a hostile one could send millions (issue 16).

A server that ignores `page` and serves the same page forever would loop; two guards stop that:
an identical page in a row, and a hard page ceiling. Both raise ApiError rather than return a
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
    on_clamped: Callable[[int], None] | None = None,
) -> list[Any]:
    """Every item of every page: `fetch_page(page, limit)` until the list's end (see above).

    `on_clamped(n)` is called when the server turned out to serve pages of n < `limit` items.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    items: list[Any] = []
    previous: list[Any] | None = None
    # The server's page size once known; None before (or once it proved unreliable).
    size: int | None = None
    # The first page's length, while it is unknown whether it was full or the last.
    first_short: int | None = None
    for page in range(1, max_pages + 1):
        batch = await fetch_page(page, limit)
        if not batch:
            return items
        if len(batch) > limit:
            raise ApiError(f"{what}: page {page} holds {len(batch)} items, more than the {limit} "
                           "asked for (`limit`); refusing an answer that ignores it")
        if batch == previous:
            raise ApiError(
                f"{what}: page {page} repeats page {page - 1}; the server seems to ignore `page`"
            )
        if page == 1:
            if len(batch) == limit:
                size = len(batch)
            else:
                first_short = len(batch)
        elif first_short is not None:
            # More after a short first page: it was full, the server clamps `limit`.
            size, first_short = first_short, None
            if on_clamped is not None:
                on_clamped(size)
        if size is not None and len(batch) > size:
            size = None  # pages vary in length: only an empty page can end the list now
        items.extend(batch)
        if size is not None and len(batch) < size:
            return items
        previous = batch
    raise ApiError(f"{what}: more than {max_pages} pages of {limit}; giving up")
