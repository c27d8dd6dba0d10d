"""A first sync of a project with history: daily jobs whose older runs' files have expired,
into a lake and into a DuckDB file.

    python benchmarks/bench_history.py                          # 365 days (~1 min)
    python benchmarks/bench_history.py --days 90 --views-per-day 5000

A customer who starts with csload after months of daily exports meets, in the first sync, one
run per job and past day whose files storage no longer keeps (7 days): csload asks storage for
each (refused, even freshly signed) and records it in the ledger as expired, for `csload
backfill --gaps`. bench_sync's simulator process (`--serve`) generates `--days` days of a
`views` job (CSV) and a `sessions` job (JSONL), the last of them at its clock; generation is
not timed. Then, each as its own process (spawn to exit; CPU seconds and peak RSS from
`wait4`), on fresh targets:

1. `csload sync --parquet ROOT --json`;
2. `csload sync --db FILE --json`;
3. `csload sync --parquet ROOT --json` again, with nothing new (the ledger's read).

Reported: the runs loaded and expired (both syncs must agree), and the number of Delta commits
of the lake's ledger table. Results: a table on stdout and
`benchmarks/results/bench_history-<date>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from harness.processes import CSLOAD, RESULTS, run_child
from harness.simserver import Server

from csload.lake.layout import LEDGER_TABLE_DIR

HERE = Path(__file__).resolve()


def sync(server: Server, target: list[str], work: Path) -> dict[str, Any]:
    """One `csload sync <target> --json`: its time, CPU, peak RSS and runs by status."""
    child = run_child([*CSLOAD, "sync", *target, "--json"], env=server.env(), cwd=work)
    if child.returncode not in (0, 3):   # 3: some runs expired, as expected here
        raise SystemExit(f"csload sync {' '.join(target)} exited {child.returncode}:\n"
                         f"{child.stderr[-3000:]}")
    report = json.loads(child.stdout)
    return {"seconds": round(child.seconds, 2), "cpu_seconds": round(child.cpu_seconds, 2),
            "rss_mb": round(child.rss_mb), "exit_code": child.returncode,
            "runs": dict(Counter(r["status"] for r in report["runs"]))}


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    server = Server(args.days * args.views_per_day, args.days, 32, work / "data")
    try:
        root, db = work / "lake", work / "history.duckdb"
        lake = sync(server, ["--parquet", str(root)], work)
        lake["ledger_commits"] = DeltaTable(str(root / LEDGER_TABLE_DIR)).version() + 1
        duckdb = sync(server, ["--db", str(db)], work)
        noop = sync(server, ["--parquet", str(root)], work)
    finally:
        server.stop()
    if lake["runs"] != duckdb["runs"]:
        raise SystemExit(f"the two targets disagree: lake {lake['runs']}, DuckDB {duckdb['runs']}")
    return {"days": args.days, "views_per_day": args.views_per_day,
            "generate_seconds": server.hello.get("generate_seconds"),
            "lake": lake, "duckdb": duckdb, "lake_noop": noop}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--views-per-day", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-history-", dir=args.workdir))
    try:
        result = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform()}
    runs = result["lake"]["runs"]
    print(f"{args.days} days of 2 daily jobs: {runs.get('loaded', 0)} runs loaded, "
          f"{runs.get('expired', 0)} expired")
    print(f"{'first sync':<22}{'seconds':>9}{'CPU s':>8}{'peak RSS':>10}")
    for label, key in (("into a lake", "lake"), ("into a DuckDB file", "duckdb"),
                       ("lake, nothing new", "lake_noop")):
        r = result[key]
        print(f"{label:<22}{r['seconds']:>9.2f}{r['cpu_seconds']:>8.2f}{r['rss_mb']:>7} MB")
    print(f"the lake's ledger: {result['lake']['ledger_commits']} Delta commits")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    out = RESULTS / f"bench_history-{stamp}.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
