"""A bench's results: the table on stdout, each size's rounds, the verdicts, the JSON file."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import ab_patches

from harness.processes import RESULTS, fmt_list, git_state
from harness.sizes import TARGET_NOOP_S, TARGET_RSS_MB, SizeResult

Verdict = tuple[str, bool, str]   # (the goal, met, the figures)


def print_columns(head: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    """`lines` under `head`, right-aligned."""
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    print()
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    print()


def print_rounds(results: Sequence[SizeResult], baseline: str) -> None:
    """Every round's figures of each size, and the machine's load around them."""
    for r in results:
        print(f"{r.target_views:,} views: csload {fmt_list(r.csload_seconds)} s, "
              f"{baseline} {fmt_list(r.duckdb_seconds)} s (connect..close: "
              f"{fmt_list(r.duckdb_connect_to_close_seconds)} s, CPU "
              f"{fmt_list(r.duckdb_cpu_seconds, 1)} s, "
              f"RSS {max(r.duckdb_rss_mb):.0f} MB); csload CPU "
              f"{fmt_list(r.csload_cpu_seconds, 1)} s, RSS {fmt_list(r.csload_rss_mb, 0)} MB; "
              f"no-op {fmt_list(r.noop_seconds)} s; load avg {r.load_before} -> "
              f"{r.load_after}, CPU pressure (PSI some avg60) {r.cpu_pressure_before} -> "
              f"{r.cpu_pressure_after} %")


def memory_and_noop(results: Sequence[SizeResult]) -> list[Verdict]:
    """The goals both benches share: peak RSS and the sync with nothing new."""
    return [
        (f"peak RSS < {TARGET_RSS_MB} MB", max(r.peak_rss for r in results) < TARGET_RSS_MB,
         " / ".join(f"{r.peak_rss:.0f}" for r in results) + " MB"),
        (f"no-op sync < {TARGET_NOOP_S} s",
         max(min(r.noop_seconds) for r in results) < TARGET_NOOP_S,
         " / ".join(f"{min(r.noop_seconds):.2f}" for r in results) + " s"),
    ]


def print_verdicts(verdicts: Sequence[Verdict]) -> None:
    for name, ok, detail in verdicts:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name} {detail}")


def results_path(name: str, started: datetime, suffix: str) -> Path:
    """`results/<name>-<date><suffix>.json`, with the time too if that one exists."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{started:%Y-%m-%d}{suffix}.json"
    if path.exists():
        path = RESULTS / f"{name}-{started:%Y-%m-%dT%H%M%S}{suffix}.json"
    return path


def common_suffix(args: argparse.Namespace, extra: str = "") -> str:
    """The results file's suffix for a quick, patched or A/B run (`extra` before the A/B's)."""
    return (("-quick" if args.quick else "") + ("-patched" if args.patch else "") + extra
            + ab_patches.suffix(os.environ.get(ab_patches.ENV)))


def run_record(started: datetime, args: argparse.Namespace, **versions: str) -> dict[str, Any]:
    """The head of a results file: when, which code, which machine, which options."""
    return {
        "started": started.isoformat(),
        "code": git_state(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), **versions,
                    "platform": platform.platform()},
        # str(): --workdir is a Path (the results of a run with it were lost to a TypeError).
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                    if not k.startswith("_")},
    }


def save(path: Path, payload: dict[str, Any]) -> Path:
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
