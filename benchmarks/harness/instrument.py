"""One sync in this process with timers around its stages (`--phases`): each stage's wall time
and its thread's CPU time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.processes import log


@dataclass
class Span:
    name: str
    start: float
    end: float
    cpu: float | None   # CPU time of the calling thread (sync spans only)


@dataclass
class Recorder:
    t0: float = field(default_factory=time.perf_counter)
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def span(self, name: str, cpu: bool = True) -> Iterator[None]:
        start, cpu_start = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            used = time.thread_time() - cpu_start if cpu else None
            with self.lock:
                self.spans.append(Span(name, start - self.t0, time.perf_counter() - self.t0,
                                       used))

    def wrap(self, owner: Any, attr: str, label: str, static: bool = False) -> None:
        """Time every call of `owner.attr` (a function) as a span named `label`."""
        original = getattr(owner, attr, None)
        if original is None:   # the library changed: measure what is still there
            log(f"   (no {getattr(owner, '__name__', owner)}.{attr} to time)")
            return

        def wrapper(*a: Any, **k: Any) -> Any:
            with self.span(label):
                return original(*a, **k)

        setattr(owner, attr, staticmethod(wrapper) if static else wrapper)

    def wrap_async(self, owner: Any, attr: str, label: str) -> None:
        """Time every call of the coroutine function `owner.attr` (wall time only)."""
        original = getattr(owner, attr, None)
        if original is None:   # the library changed: measure what is still there
            log(f"   (no {getattr(owner, '__name__', owner)}.{attr} to time)")
            return

        async def wrapper(*a: Any, **k: Any) -> Any:
            with self.span(label, cpu=False):
                return await original(*a, **k)

        setattr(owner, attr, wrapper)

    def phases(self) -> dict[str, dict[str, Any]]:
        """Per span name: count, summed wall time, summed CPU, first start, last end."""
        phases: dict[str, dict[str, Any]] = {}
        for s in self.spans:
            p = phases.setdefault(s.name, {"count": 0, "sum": 0.0, "cpu": None,
                                           "first_start": s.start, "last_end": s.end})
            p["count"] += 1
            p["sum"] += s.end - s.start
            if s.cpu is not None:
                p["cpu"] = (p["cpu"] or 0.0) + s.cpu
            p["first_start"] = min(p["first_start"], s.start)
            p["last_end"] = max(p["last_end"], s.end)
        for p in phases.values():
            p["sum"] = round(p["sum"], 3)
            p["cpu"] = None if p["cpu"] is None else round(p["cpu"], 3)
        return phases


def run_instrumented(recorder: Recorder, **target: Any) -> dict[str, Any]:
    """One `csload.sync` into `target` (db= or parquet=) with the pipeline's common stages
    timed (wrap the target's own with `recorder.wrap` first): the JSON summary to print."""
    import resource

    import duckdb

    import csload.pipeline.sync
    import csload.transfer.stage
    from csload.config import load_settings
    from csload.transfer import gzipcheck, storage

    recorder.wrap_async(csload.transfer.stage, "stage_run", "stage_run (download a run)")
    recorder.wrap_async(csload.pipeline.sync, "plan_sync", "plan (jobs, runs, ledger)")
    recorder.wrap(csload.pipeline.sync, "_write", "writer: _write (batch)")
    recorder.wrap(gzipcheck.GzipVerifier, "feed", "gzip verify (feed)")
    recorder.wrap(storage._TempFile, "write", "staging file write+verify")

    batches: list[int] = []
    original_write = csload.pipeline.sync._write

    def count_batches(store: Any, batch: list[Any]) -> Any:
        batches.append(len(batch))
        return original_write(store, batch)

    csload.pipeline.sync._write = count_batches
    settings = load_settings()
    start = time.perf_counter()
    report = csload.pipeline.sync.sync(settings, **target)
    total = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": total, "rows": report.rows, "batches": batches,
            "rss_mb": usage.ru_maxrss / 1024, "duckdb": duckdb.__version__,
            "cpu_total": round(usage.ru_utime + usage.ru_stime, 3),
            "cpu_main_thread": round(time.thread_time(), 3), "phases": recorder.phases()}


def print_phases(phases: dict[str, Any]) -> None:
    log(f"   instrumented sync: {phases['seconds']:.2f} s, batches {phases['batches']}, "
        f"RSS {phases['rss_mb']:.0f} MB, CPU {phases['cpu_total']:.1f} s (event-loop thread "
        f"{phases['cpu_main_thread']:.1f} s)")
    for name, p in sorted(phases["phases"].items(), key=lambda kv: kv[1]["first_start"]):
        cpu = "" if p["cpu"] is None else f"thread CPU {p['cpu']:6.2f} s"
        log(f"     {name:<34} x{p['count']:<4} busy {p['sum']:7.2f} s  {cpu:<21}"
            f"[{p['first_start']:6.2f} .. {p['last_end']:6.2f}]")
