"""What one download of a part may cost: a byte cap, and a floor on the storage host's rate.

A part comes from a storage host csload does not control (issue 16):

* `[limits] max_part_bytes`: a part whose Content-Length is above it is refused before a byte
  is written; a body that announced nothing is cut before the chunk that would pass it is
  written (aiohttp reads no more than an announced Content-Length, so a body cannot outgrow
  its announcement). Final (PartTooLarge): the same URL would send the same part again.
* `[limits] min_download_rate` bytes per second, over each `min_rate_window` seconds since the
  request was sent (the wait for the answer's headers included): a window that ends with
  fewer bytes is the end of the attempt (StorageTooSlow), retried as any failed download. The
  read timeout is a time between bytes: a host sending a byte every 119 s kept a download
  alive for ever. Windows follow one another (not sliding): O(1) per chunk at any rate, and
  a trickle is cut within two windows at most.

`DownloadGuard.scope` is a cancel scope whose deadline is the end of the first window that
would fail if no more bytes came: a stalled read is cut there, not only at the next chunk.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

import anyio

from csload.errors import PartTooLarge, StorageTooSlow

if TYPE_CHECKING:
    from csload.config import Limits


class DownloadGuard:
    """The byte cap and the rate floor of one GET (a whole part, or a piece of one)."""

    def __init__(self, limits: Limits, label: str, ids: Mapping[str, int | None]) -> None:
        self.label, self.ids = label, dict(ids)
        self.cap = limits.max_part_bytes
        self.rate, self.window = limits.min_download_rate, limits.min_rate_window
        self.need = self.rate * self.window
        self.received = 0
        self._window_end = anyio.current_time() + self.window
        self._in_window = 0
        self.scope = anyio.CancelScope(deadline=self._deadline())

    def announced(self, length: int | None) -> None:
        """Refuse a Content-Length above the cap, before anything is written."""
        if length is not None and length > self.cap:
            raise self._too_large(f"storage announced {length:,} bytes")

    def watch(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks`, counted against the cap and the rate as they arrive."""
        return _Watched(self, chunks)

    def arrived(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received > self.cap:
            raise self._too_large(f"storage sent more than {self.cap:,} bytes")
        if self.need <= 0:
            return
        short = self._roll(anyio.current_time())
        if short is not None:
            raise self._too_slow(short)
        self._in_window += nbytes
        self.scope.deadline = self._deadline()

    def check(self) -> None:
        """After `scope`: raise StorageTooSlow if its deadline cut the GET."""
        if self.scope.cancelled_caught:
            short = self._roll(anyio.current_time())
            raise self._too_slow(self._in_window if short is None else short)

    def _roll(self, now: float) -> int | None:
        """Close the windows that ended by `now`; the bytes of the first one that fell short."""
        while now >= self._window_end:
            if self._in_window < self.need:
                return self._in_window
            self._window_end += self.window
            self._in_window = 0
        return None

    def _deadline(self) -> float:
        """When the attempt fails if no byte comes: this window's end, or the next one's
        once this one has its bytes."""
        if self.need <= 0:
            return math.inf
        return self._window_end + (self.window if self._in_window >= self.need else 0)

    def _too_large(self, what: str) -> PartTooLarge:
        return PartTooLarge(
            f"{self.label}: {what}, more than the {self.cap:,} csload accepts for one part; "
            "raise [limits] max_part_bytes to download it", **self.ids)

    def _too_slow(self, sent: int) -> StorageTooSlow:
        return StorageTooSlow(
            f"{self.label}: storage sent {sent:,} bytes in the last {self.window:g} s, below "
            f"[limits] min_download_rate ({self.rate:g} bytes/s); lower it (0 turns it off) "
            "if this storage host is this slow", **self.ids)


class _Watched:
    """An iterator of chunks that tells its guard of each one before handing it on."""

    def __init__(self, guard: DownloadGuard, chunks: AsyncIterator[bytes]) -> None:
        self.guard, self.chunks = guard, chunks

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.chunks.__anext__()
        self.guard.arrived(len(chunk))
        return chunk
