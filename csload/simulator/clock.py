"""The simulator's clock: every time-based behaviour reads it, never the system time directly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    """UTC time that tests move by hand (`advance`), optionally also following real time.

    A frozen clock (the default) makes token expiry, URL expiry, file retention and `once`-job
    progress depend only on what the test does, never on how fast the machine is.
    """

    def __init__(self, start: datetime | None = None, *, real_time: bool = False) -> None:
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        elif start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware (UTC)")
        self._start = start.astimezone(UTC)
        self._offset = 0.0
        self._real_time = real_time
        self._origin = time.monotonic()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current simulated time, aware UTC."""
        with self._lock:
            offset = self._offset
        if self._real_time:
            offset += time.monotonic() - self._origin
        return self._start + timedelta(seconds=offset)

    def advance(self, seconds: float) -> datetime:
        """Move time forward (never back: expiries and run states only move one way)."""
        if seconds < 0:
            raise ValueError("SimClock cannot go back in time")
        with self._lock:
            self._offset += seconds
        return self.now()

    def advance_to(self, when: datetime) -> datetime:
        """Move time forward to `when` (no-op if it is already past)."""
        delta = (when - self.now()).total_seconds()
        if delta > 0:
            self.advance(delta)
        return self.now()
