"""The Simulator: one simulated Contentsquare project, its HTTP server, and its truth."""

from __future__ import annotations

import gzip
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from aiohttp import web

from csload.simulator.app import make_app
from csload.simulator.auth import TokenStore
from csload.simulator.clock import SimClock
from csload.simulator.config import SimConfig, Variants
from csload.simulator.faults import Faults
from csload.simulator.formats import encode_parts
from csload.simulator.hashing import derive_seed
from csload.simulator.limits import ApiGate
from csload.simulator.model import JobRecord, RunRecord
from csload.simulator.parts import COMPRESS_LEVEL, PartStore
from csload.simulator.rows import column_types, columns_of, run_rows
from csload.simulator.server import ServerHandle, require_loopback, serve_app, start_thread
from csload.simulator.state import ProjectState
from csload.simulator.stats import SimStats
from csload.simulator.storage import Serving, UrlSigner
from csload.simulator.variables import VariableValues


class Simulator:
    """A simulated project: jobs, runs, data, faults and counters, served over HTTP.

    Python-side reads (`jobs`, `runs`, `truth`, ...) first create the runs that are due on the
    simulated clock, exactly as an API request would.
    """

    def __init__(self, config: SimConfig | None = None, *, clock: SimClock | None = None,
                 faults: Faults | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self.clock = clock if clock is not None else SimClock(
            self.config.start_time, real_time=self.config.real_time_clock)
        self.faults = faults if faults is not None else Faults(
            rng=random.Random(derive_seed("faults", self.config.seed)))
        self.stats = SimStats()
        self.tokens = TokenStore()
        self.signer = UrlSigner()
        self.serving = Serving()   # storage downloads in flight
        self.gate = ApiGate()
        self.variables = VariableValues(self.config.seed)
        self.state = ProjectState(self.config, self.clock.now())
        self._parts = PartStore(self._build_parts)
        # Set while serving; URLs handed out (endpoint, part URLs) are built on it.
        self.base_url: str | None = None

    # -- settings ----------------------------------------------------------------------------

    @property
    def variants(self) -> Variants:
        return self.config.variants

    @property
    def credentials(self) -> tuple[str, str, int]:
        """(client_id, client_secret, project_id)."""
        return self.config.client_id, self.config.client_secret, self.config.project_id

    # -- jobs and runs -------------------------------------------------------------------------

    def sync(self) -> list[int]:
        """Create the runs that are due on the clock now; returns their ids."""
        return self.state.sync(self.clock.now())

    @property
    def jobs(self) -> list[JobRecord]:
        self.sync()
        return sorted(self.state.all_jobs(), key=lambda j: j.job_id)

    def job(self, job_id: int) -> JobRecord:
        self.sync()
        job = self.state.job(job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        return job

    def job_named(self, name: str) -> JobRecord:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(f"no job named {name!r}")

    def runs(self, job_id: int) -> list[RunRecord]:
        """The job's runs, oldest first."""
        self.sync()
        return sorted(self.state.job_runs(job_id), key=lambda r: r.run_id)

    def run(self, run_id: int) -> RunRecord:
        self.sync()
        run = self.state.run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id}")
        return run

    def run_state(self, run_id: int) -> str:
        return self.run(run_id).state(self.clock.now())

    def job_state(self, job_id: int) -> str:
        return self.job(job_id).state(self.clock.now())

    def rerun(self, job_id: int, day: date) -> int:
        """A new SUCCESS run of `day` (window [day, day+1)) with the day's next data revision."""
        return self.state.rerun(job_id, day, self.clock.now()).run_id

    def advance(self, seconds: float) -> list[int]:
        """Move the clock forward; returns the ids of the runs created meanwhile."""
        self.clock.advance(seconds)
        return self.sync()

    def advance_days(self, days: int = 1) -> list[int]:
        """Move the clock `days` forward: each active daily job gets its next runs."""
        return self.advance(days * 86_400)

    def suspend(self, job_id: int) -> None:
        """Switch a daily or hourly job off (state SUSPENDED, no more runs)."""
        self.state.suspend(job_id, self.clock.now())

    def expire_tokens(self) -> None:
        """Make every token issued so far answer JWT_EXPIRED."""
        self.tokens.expire_all(self.clock.now())

    # -- the truth ----------------------------------------------------------------------------

    def _job_run(self, job_id: int, run_id: int) -> tuple[JobRecord, RunRecord]:
        job, run = self.job(job_id), self.run(run_id)
        if run.job_id != job_id:
            raise KeyError(f"run {run_id} is not a run of job {job_id}")
        return job, run

    def truth(self, job_id: int, run_id: int) -> list[dict[str, Any]]:
        """The rows the run's files hold, in file order, keyed by column name.

        Values are typed: int, float, str, datetime (naive UTC), date, lists, None. A run
        without files (FAILURE, or not finished yet) holds no rows.
        """
        job, run = self._job_run(job_id, run_id)
        if not run.has_files(self.clock.now()):
            return []
        rows = self._rows(job, run)
        # Lists are shared with the cached day data: hand out copies a test may change.
        lists = [name for name, value in rows[0].items() if isinstance(value, list)] if rows else []
        for row in rows:
            for name in lists:
                row[name] = list(row[name])
        return rows

    def column_types(self, job_id: int) -> dict[str, str]:
        """Column name -> export-engine type (custom/dynamic vars: Nullable(String))."""
        return column_types(self.job(job_id))

    def _rows(self, job: JobRecord, run: RunRecord) -> list[dict[str, Any]]:
        cfg = self.config
        return run_rows(job, run, seed=cfg.seed, sessions_per_day=cfg.sessions_per_day,
                        project_id=cfg.project_id, variables=self.variables,
                        variants=cfg.variants)

    def _build_parts(self, run_id: int) -> list[bytes]:
        run = self.state.run(run_id)
        assert run is not None
        job = self.state.job(run.job_id)
        assert job is not None
        variants = self.config.variants
        return encode_parts(self._rows(job, run), columns_of(job, variants), job.format,
                            self.config.part_max_bytes, variants)

    def part_bodies(self, job_id: int, run_id: int, *, compressed: bool = False) -> list[bytes]:
        """The bodies storage serves for the run's parts (empty list: the run has no files)."""
        _, run = self._job_run(job_id, run_id)
        if not run.has_files(self.clock.now()):
            return []
        return [self._parts.body(run_id, i, compressed=compressed)
                for i in range(1, self._parts.count(run_id) + 1)]

    async def part_count_async(self, run_id: int) -> int:
        return len(await self._parts.gzip_parts_async(run_id))

    async def part_body_async(self, run_id: int, part_id: int, *, compressed: bool) -> bytes:
        """The bytes storage sends for a part, variants applied."""
        await self._parts.gzip_parts_async(run_id)
        run = self.state.run(run_id)
        job = self.state.job(run.job_id) if run is not None else None
        if job is not None and job.format == "JSONL" and self.variants.jsonl_blank_last_line:
            body = self._parts.body(run_id, part_id, compressed=False) + b"\n"
            return gzip.compress(body, compresslevel=COMPRESS_LEVEL, mtime=0) if compressed \
                else body
        return self._parts.body(run_id, part_id, compressed=compressed)

    def part_etag(self, body: bytes) -> str:
        """The ETag storage sends with a part's `body` (csload.simulator.parts.PartStore.etag)."""
        return self._parts.etag(body)

    def prepare(self) -> int:
        """Build (and cache) the parts of every successful run now; returns how many parts.

        For benchmarks: afterwards, serving a part costs no generation time.
        """
        now = self.clock.now()
        self.state.sync(now)
        return sum(self._parts.count(run.run_id) for run in self.state.all_runs()
                   if run.has_files(now))

    # -- holding API requests (concurrency tests) ---------------------------------------------

    def pause_api(self) -> None:
        """Hold every API request (once counted in flight) until resume_api()."""
        self.gate.close()

    def resume_api(self) -> None:
        self.gate.open()

    async def wait_api_held(self, count: int) -> None:
        """Wait until `count` API requests are held by pause_api (on the serving loop)."""
        await self.gate.wait_held(count)

    # -- serving ------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        return make_app(self)

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on host:port (port 0: any free port) inside the running loop; yields the base
        URL, which is also the auth URL."""
        require_loopback(host)
        async with serve_app(self, host, port) as base_url:
            yield base_url

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> ServerHandle:
        """Serve from a thread with its own event loop (for synchronous code)."""
        require_loopback(host)
        return start_thread(self, host, port)
