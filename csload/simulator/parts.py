"""A cache of part bodies per run: generation is deterministic, so each run is built once.

Only the gzip bodies are kept (a benchmark-sized run is large); the uncompressed variant
decompresses on demand. Building runs in a worker thread when called from the event loop, so a
large run does not stall other requests.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable

# Fast compression: the bytes only cross the loopback, and the simulator should not be what a
# benchmark measures.
COMPRESS_LEVEL = 1


class PartStore:
    def __init__(self, build: Callable[[int], list[bytes]]) -> None:
        self._build = build
        self._parts: dict[int, list[bytes]] = {}
        self._lock = threading.Lock()
        self._run_locks: dict[int, threading.Lock] = {}

    def gzip_parts(self, run_id: int) -> list[bytes]:
        cached = self._parts.get(run_id)
        if cached is not None:
            return cached
        with self._lock:
            run_lock = self._run_locks.setdefault(run_id, threading.Lock())
        with run_lock:
            cached = self._parts.get(run_id)
            if cached is None:
                cached = [gzip.compress(body, compresslevel=COMPRESS_LEVEL, mtime=0)
                          for body in self._build(run_id)]
                self._parts[run_id] = cached
        return cached

    def body(self, run_id: int, part_id: int, *, compressed: bool = True) -> bytes:
        """Part `part_id` (1-based) of a run."""
        data = self.gzip_parts(run_id)[part_id - 1]
        return data if compressed else gzip.decompress(data)

    def count(self, run_id: int) -> int:
        return len(self.gzip_parts(run_id))

    async def gzip_parts_async(self, run_id: int) -> list[bytes]:
        cached = self._parts.get(run_id)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.gzip_parts, run_id)

    def forget(self, run_id: int) -> None:
        with self._lock:
            self._parts.pop(run_id, None)
