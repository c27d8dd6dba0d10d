"""Counters of what the simulator saw: the truth tests check a client's behaviour against."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as the simulator received it (kept when `SimStats.keep_requests` is on)."""

    kind: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]


@dataclass
class SimStats:
    """Request counters, read from tests (thread-safe increments; reset() zeroes them).

    Route kinds: token, create_job, list_jobs, successful_runs, get_job, list_runs, get_run,
    exportable_fields, custom_vars, custom_vars_underscore, dynamic_var_keys, unknown_api
    (an unmatched path under the API prefix), storage, storage_other (an unmatched storage
    path), unknown.
    """

    # Requests per route kind ("token", "list_jobs", "get_run", "storage", ...).
    requests: Counter[str] = field(default_factory=Counter)
    # Responses per status code, all routes.
    statuses: Counter[int] = field(default_factory=Counter)
    # Responses per (route kind, status).
    statuses_by_kind: Counter[tuple[str, int]] = field(default_factory=Counter)
    api_requests: int = 0
    api_in_flight: int = 0
    # Highest number of API requests in flight at once, counting those refused with 429.
    max_api_in_flight: int = 0
    # 429s sent because more than max_concurrent_api requests were in flight.
    concurrency_rejections: int = 0
    token_requests: int = 0
    tokens_issued: int = 0
    storage_requests: int = 0
    # Storage requests that carried an Authorization header (a client must never send one).
    storage_with_authorization: int = 0
    storage_bytes_sent: int = 0
    # Storage requests for a byte range (Range header) that were served one (206).
    storage_range_requests: int = 0
    # Faults actually applied, by name ("api_429", "api_5xx", "slowdown", "cut", ...).
    faults: Counter[str] = field(default_factory=Counter)
    # Responses delayed by the latency knob, and storage chunks paced by the bandwidth cap.
    delayed_responses: int = 0
    paced_chunks: int = 0
    # Storage downloads being served at once, and the most ever (a download counts from its
    # arrival until just before its last bytes are written, so that a client that waits for
    # the whole body before starting the next download is never over-counted).
    storage_in_flight: int = 0
    max_storage_in_flight: int = 0
    # Every request's method, path, query and headers, when `keep_requests` is on (security
    # tests check what each host was sent; off by default: a benchmark sends thousands).
    keep_requests: bool = False
    seen: list[SeenRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def reset(self) -> None:
        """Zero every counter (requests in flight stay counted, `keep_requests` stays)."""
        with self._lock:
            in_flight, storage, keep = (self.api_in_flight, self.storage_in_flight,
                                        self.keep_requests)
            fresh = SimStats()
            for name in self.__dataclass_fields__:
                if name != "_lock":
                    setattr(self, name, getattr(fresh, name))
            self.api_in_flight, self.storage_in_flight = in_flight, storage
            self.keep_requests = keep

    def api_enter(self) -> int:
        with self._lock:
            self.api_requests += 1
            self.api_in_flight += 1
            self.max_api_in_flight = max(self.max_api_in_flight, self.api_in_flight)
            return self.api_in_flight

    def api_leave(self) -> None:
        with self._lock:
            self.api_in_flight -= 1

    def storage_enter(self) -> None:
        with self._lock:
            self.storage_in_flight += 1
            self.max_storage_in_flight = max(self.max_storage_in_flight, self.storage_in_flight)

    def storage_leave(self) -> None:
        with self._lock:
            self.storage_in_flight -= 1

    def record(self, request: SeenRequest) -> None:
        if self.keep_requests:
            with self._lock:
                self.seen.append(request)

    def count_request(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def count_status(self, kind: str, status: int) -> None:
        with self._lock:
            self.statuses[status] += 1
            self.statuses_by_kind[(kind, status)] += 1

    def count_fault(self, name: str) -> None:
        with self._lock:
            self.faults[name] += 1

    def add(self, counter: str, n: int = 1) -> None:
        """Add to one of the plain integer counters, by attribute name."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)
