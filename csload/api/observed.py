"""What the client learnt about the live service while it talked to it, for `csload doctor`.

The contract guessed several things that only a real project can settle (section 9): the page
size, the over-limit answer, the proxy in the way, the server's clock. The client records them
here as it goes; nothing in it is a secret (the proxy URL is kept without its credentials).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ClientObservations:
    """Mutable: the client updates it in place; read it through `ExportClient.observed`."""

    # The limit csload sends with every list request.
    page_size_asked: int
    # The page size the server was seen to really use: set when a list came back clamped (a
    # full page shorter than the limit asked); None when never learnt.
    page_size: int | None = None
    # Over-limit answers seen (429, or a 4xx speaking of a rate, concurrency or request limit).
    over_limit_answers: int = 0
    # Whether the last over-limit answer carried Retry-After; None before the first.
    over_limit_retry_after: bool | None = None
    # The proxy used for the API endpoint (the token endpoint's until the API was called),
    # credentials removed; None when requests go direct.
    proxy: str | None = None
    # The last `Date` response header of the API, and time.time() when it was read.
    server_date: str | None = None
    server_date_at: float | None = None

    def saw_over_limit(self, retry_after: bool) -> None:
        self.over_limit_answers += 1
        self.over_limit_retry_after = retry_after

    def saw_date(self, value: str | None, now: Callable[[], float] = time.time) -> None:
        if value:
            self.server_date = value
            self.server_date_at = now()
