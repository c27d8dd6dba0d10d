"""The options of bench_sync and bench_parquet, a size's figures, and the loop over `--sizes`."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ab_patches

from harness.patches import PATCHES, PATCHES_WITH_VALUE
from harness.processes import CSLOAD, compile_csload, load_average, log, run_child

# The goals both benches check (a sync's peak RSS; a sync with nothing new).
TARGET_RSS_MB = 500
TARGET_NOOP_S = 2.0


@dataclass
class SizeResult:
    target_views: int
    days: int
    views: int = 0
    sessions: int = 0
    gzip_mb: float = 0.0
    parts: int = 0
    generate_seconds: float = 0.0
    csload_seconds: list[float] = field(default_factory=list)
    csload_rss_mb: list[float] = field(default_factory=list)
    csload_cpu_seconds: list[float] = field(default_factory=list)
    server_cpu_seconds: list[float] = field(default_factory=list)
    # DuckDB's own load, its process from spawn to exit (compared with csload_seconds).
    duckdb_seconds: list[float] = field(default_factory=list)
    # The same figures: kept for readers of files before 2026-12-06, where `duckdb_seconds` was
    # connect..close and this the process, then including the untimed preparation.
    duckdb_wall_seconds: list[float] = field(default_factory=list)
    # connect..close inside the baseline process (start-up, import and exit excluded).
    duckdb_connect_to_close_seconds: list[float] = field(default_factory=list)
    duckdb_rss_mb: list[float] = field(default_factory=list)
    duckdb_cpu_seconds: list[float] = field(default_factory=list)
    duckdb_statements: list[dict[str, float]] = field(default_factory=list)
    # Size of each database file when its process ended (the data's footprint on disk).
    duckdb_file_mb: list[float] = field(default_factory=list)
    csload_file_mb: list[float] = field(default_factory=list)
    noop_seconds: list[float] = field(default_factory=list)
    noop_rss_mb: list[float] = field(default_factory=list)
    resync_seconds: float = 0.0
    resync_rss_mb: float = 0.0
    resync_rows: dict[str, int] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)
    cpu_pressure_before: float | None = None
    cpu_pressure_after: float | None = None
    phases: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        return self.views + self.sessions

    @property
    def best_csload(self) -> float:
        return min(self.csload_seconds)

    @property
    def best_duckdb(self) -> float:
        return min(self.duckdb_seconds)

    @property
    def ratio(self) -> float:
        return self.best_csload / self.best_duckdb

    @property
    def cpu_ratio(self) -> float:
        """CPU seconds of the whole processes: robust when other work shares the machine."""
        return min(self.csload_cpu_seconds) / min(self.duckdb_cpu_seconds)

    @property
    def peak_rss(self) -> float:
        return max([*self.csload_rss_mb, self.resync_rss_mb])


def common_parser(doc: str | None, baseline_name: str) -> argparse.ArgumentParser:
    """The options bench_sync and bench_parquet share (with their internal modes)."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,2000000",
                        help="pageview counts to measure, comma-separated [1000000,2000000]")
    parser.add_argument("--days", type=int, default=5, help="daily runs per job [5]")
    parser.add_argument("--dialect", choices=("contract", "clickhouse"), default="contract",
                        help="the files the simulator writes: the contract's, or ClickHouse's "
                             "defaults (no CSV header, every string quoted, 64-bit integers as "
                             "JSON strings, wide integers) [contract]")
    parser.add_argument("--part-mb", type=int, default=32,
                        help="maximum uncompressed MB per part [32]")
    parser.add_argument("--repeat", type=int, default=3,
                        help=f"rounds of ({baseline_name}, csload sync) per size; best counts [3]")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100k pageviews, 2 days, 1 round")
    parser.add_argument("--phases", action="store_true",
                        help="one more, instrumented sync per size: where the time goes")
    parser.add_argument("--patch", action="append", default=[], metavar="NAME[=VALUE]",
                        help="experimental change monkeypatched into the measured syncs: "
                        + ", ".join([*PATCHES, *(f"{n}=VALUE" for n in PATCHES_WITH_VALUE)]))
    parser.add_argument("--baseline-memory-limit", metavar="SIZE",
                        help="SET memory_limit for the DuckDB baseline (default: DuckDB's)")
    parser.add_argument("--workdir", type=Path, help="folder for files (default: a temp dir)")
    parser.add_argument("--no-json", action="store_true", help="do not write results JSON")
    # Internal modes (the script runs itself to write the baseline's SQL, the instrumented
    # sync, ...).
    parser.add_argument("--baseline-plan", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instrumented-sync", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        args.sizes, args.days, args.repeat, args.part_mb = "100000", 2, 1, 8
    return args


def run_sizes(args: argparse.Namespace, name: str,
              measure: Callable[[int, argparse.Namespace, Path], Any],
              show: Callable[[list[Any]], None],
              save: Callable[[list[Any], argparse.Namespace, datetime], Path]) -> None:
    """Measure every size of `--sizes` in a work folder, print the table, save the JSON."""
    started = datetime.now(UTC)
    sizes = [int(s) for s in args.sizes.split(",")]
    ab = os.environ.get(ab_patches.ENV)
    ab_patches.parse(ab)   # an unknown switch fails now, not after the first size
    compile_csload()
    startup = run_child([*CSLOAD, "--version"])
    duckdb_import = run_child([sys.executable, "-c", "import duckdb"])
    log(f"csload {name}: sizes {sizes}, {args.days} days, parts <= {args.part_mb} MB, "
        f"{args.repeat} rounds, patches {args.patch or 'none'}, "
        f"{'' if ab is None else f'A/B switches {ab!r} (csload_ab.py), '}"
        f"dialect {args.dialect}; {os.cpu_count()} CPUs, "
        f"load average {load_average()}; `csload --version` takes {startup.seconds:.2f} s, "
        f"`python -c 'import duckdb'` {duckdb_import.seconds:.2f} s")
    results = []
    with (contextlib.nullcontext(args.workdir) if args.workdir
          else tempfile.TemporaryDirectory(prefix=f"csload-{name.replace('_', '-')}-")) as work:
        for views in sizes:
            # Absolute: the baseline's plan names the parts, read from another working folder.
            results.append(measure(views, args, Path(work).resolve()))
    show(results)
    args.startup_seconds = round(startup.seconds, 3)
    args.duckdb_import_seconds = round(duckdb_import.seconds, 3)
    if not args.no_json:
        path = save(results, args, started)
        print(f"\nresults: {path}")
