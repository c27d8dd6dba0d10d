"""Fault knobs: a mutable dataclass a test changes at runtime, and the decisions drawn from it.

Every knob is off by default. Random faults draw from one seeded `random.Random`, so a run with
the same seed and the same request order gets the same faults.
"""

from __future__ import annotations

import gzip
import random
import threading
from dataclasses import dataclass, field
from typing import Literal

# "denied" (403 AccessDenied, as for an expired URL) and "gone" (404 NoSuchKey) are only
# served by the targeted knob.
StorageFault = Literal["slowdown", "cut", "truncate", "denied", "gone"]

_API_5XX = (500, 502, 503, 504)


@dataclass
class Faults:
    """What goes wrong, and how often. Change any field while the simulator serves."""

    # API (token endpoint included unless api_faults_on_token is False).
    api_429_rate: float = 0.0
    api_5xx_rate: float = 0.0
    # Deterministic: the next N API requests fail with api_fail_status.
    api_fail_next: int = 0
    api_fail_status: int = 503
    api_faults_on_token: bool = True
    # Deterministic and targeted: the next N API requests whose path ends with
    # `api_fail_path` (e.g. "/runs/130352": one run's detail) fail with api_fail_status, so a
    # test can make one request outlast the client's retry budget.
    api_fail_path: str | None = None
    api_fail_path_next: int = 0
    # Retry-After (whole seconds) on every fault 429 and storage 503.
    retry_after: int = 1

    # Storage.
    storage_503_rate: float = 0.0
    storage_503_next: int = 0
    # Send headers with the full Content-Length, part of the body, then abort the connection.
    storage_cut_rate: float = 0.0
    storage_cut_next: int = 0
    # Serve a truncated gzip stream with a Content-Length that matches the truncated body.
    storage_truncate_rate: float = 0.0
    storage_truncate_next: int = 0
    # Deterministic and targeted: the next N downloads of part `storage_fault_part` =
    # (run_id, part_id) suffer `storage_fault_part_kind`, whatever other requests come first.
    storage_fault_part: tuple[int, int] | None = None
    storage_fault_part_kind: StorageFault = "slowdown"
    storage_fault_part_next: int = 0
    # Share of the body sent before a cut or kept by a truncation.
    cut_fraction: float = 0.5
    # Serve part `corrupt_part` = (run_id, part_id) with its physical line `corrupt_line`
    # (1-based, the CSV header is line 1) replaced by `corrupt_text`: a well-formed gzip stream
    # whose content does not parse. Deterministic, and every download of the part gets it.
    corrupt_part: tuple[int, int] | None = None
    corrupt_line: int = 2
    corrupt_text: str = '{"broken": '
    # Serve exactly these bytes (as given: gzip them or not) as the body of part
    # (run_id, part_id), on every download: empty parts, header-only parts, another format,
    # a body that is not gzip, an extra column... The truth does not change.
    part_bodies: dict[tuple[int, int], bytes] = field(default_factory=dict)

    # Storage answers every part download with a 307 redirect to the same path and query
    # under this base URL (e.g. an http:// address off this machine, which a client must not
    # follow). The redirected request carries `redirected=1` and is served normally.
    storage_redirect_to: str | None = None

    # Every connection: seconds added before each response (API and storage).
    latency: float = 0.0
    # Storage bodies stream at most this many bytes per second (None: unlimited).
    bandwidth: int | None = None

    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def reset(self) -> None:
        """Turn every fault off (the random generator keeps its state)."""
        defaults = Faults()
        with self._lock:
            for name in self.__dataclass_fields__:
                if name not in ("rng", "_lock"):
                    setattr(self, name, getattr(defaults, name))

    def take_api_fault(self, *, token_endpoint: bool, path: str = "") -> int | None:
        """The status an API request must fail with, or None to serve it normally."""
        with self._lock:
            if (self.api_fail_path_next > 0 and self.api_fail_path
                    and path.endswith(self.api_fail_path)):
                self.api_fail_path_next -= 1
                return self.api_fail_status
        if token_endpoint and not self.api_faults_on_token:
            return None
        with self._lock:
            if self.api_fail_next > 0:
                self.api_fail_next -= 1
                return self.api_fail_status
            if self.api_429_rate and self.rng.random() < self.api_429_rate:
                return 429
            if self.api_5xx_rate and self.rng.random() < self.api_5xx_rate:
                return self.rng.choice(_API_5XX)
        return None

    def corrupted(self, run_id: int, part_id: int, body: bytes) -> bytes | None:
        """The body with `corrupt_text` in place of `corrupt_line`, if this is `corrupt_part`."""
        with self._lock:
            target, line, text = self.corrupt_part, self.corrupt_line, self.corrupt_text
        if target != (run_id, part_id):
            return None
        compressed = body[:2] == b"\x1f\x8b"
        lines = (gzip.decompress(body) if compressed else body).split(b"\n")
        if 1 <= line <= len(lines):
            lines[line - 1] = text.encode()
        else:
            lines.append(text.encode())
        raw = b"\n".join(lines)
        return gzip.compress(raw, compresslevel=1, mtime=0) if compressed else raw

    def replaced(self, run_id: int, part_id: int) -> bytes | None:
        """The body set in `part_bodies` for this part, if any."""
        with self._lock:
            return self.part_bodies.get((run_id, part_id))

    def take_storage_fault(self, run_id: int | None = None,
                           part_id: int | None = None) -> StorageFault | None:
        """The failure a storage download must suffer, or None."""
        with self._lock:
            if (self.storage_fault_part_next > 0 and self.storage_fault_part is not None
                    and self.storage_fault_part == (run_id, part_id)):
                self.storage_fault_part_next -= 1
                return self.storage_fault_part_kind
            if self.storage_503_next > 0:
                self.storage_503_next -= 1
                return "slowdown"
            if self.storage_cut_next > 0:
                self.storage_cut_next -= 1
                return "cut"
            if self.storage_truncate_next > 0:
                self.storage_truncate_next -= 1
                return "truncate"
            if self.storage_503_rate and self.rng.random() < self.storage_503_rate:
                return "slowdown"
            if self.storage_cut_rate and self.rng.random() < self.storage_cut_rate:
                return "cut"
            if self.storage_truncate_rate and self.rng.random() < self.storage_truncate_rate:
                return "truncate"
        return None
