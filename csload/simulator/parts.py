"""A cache of part bodies per run: generation is deterministic, so each run is built once.

Only the gzip bodies are kept (a benchmark-sized run is large); the uncompressed variant
decompresses on demand. A kept body's ETag is computed with it: S3 stores an object's ETag, and
hashing every body on every GET was most of the simulator's CPU in benchmarks/bench_sync.py,
time taken from the csload it serves on the same cores. Building runs in a worker thread when
called from the event loop, so a large run does not stall other requests.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
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
        # id() of every kept body -> its ETag. A kept body is alive, so no other object can
        # have its id; forget() drops a run's ids with its bodies.
        self._etags: dict[int, str] = {}

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
                for body in cached:
                    self._etags[id(body)] = _md5_etag(body)
                self._parts[run_id] = cached
        return cached

    def body(self, run_id: int, part_id: int, *, compressed: bool = True) -> bytes:
        """Part `part_id` (1-based) of a run."""
        data = self.gzip_parts(run_id)[part_id - 1]
        return data if compressed else gzip.decompress(data)

    def etag(self, body: bytes) -> str:
        """The ETag storage sends with `body` (the MD5 in quotes, as S3 gives for an object
        uploaded in one piece): a kept body's as computed with it, any other's (a variant's
        or a fault's) each time."""
        etag = self._etags.get(id(body))
        return _md5_etag(body) if etag is None else etag

    def count(self, run_id: int) -> int:
        return len(self.gzip_parts(run_id))

    async def gzip_parts_async(self, run_id: int) -> list[bytes]:
        cached = self._parts.get(run_id)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.gzip_parts, run_id)

    def forget(self, run_id: int) -> None:
        with self._lock:
            for body in self._parts.pop(run_id, ()):
                self._etags.pop(id(body), None)


def _md5_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
