"""What loading every narrower integer as BIGINT costs, against the catalog's narrow types.

    python benchmarks/bench_types.py                     # 1 M pageviews, 6 rounds (~4 min)
    python benchmarks/bench_types.py --views 2000000 --rounds 4 --dialect clickhouse

The files of `bench_sync.py` (the same simulator, seed and days: a CSV views job and a JSONL
sessions job, gzip parts) are loaded by DuckDB's own `CREATE TABLE AS SELECT ... FROM
read_csv/read_json` (bench_sync's baseline, with csload's reader options and column types),
once with today's types (BIGINT) and once with the types csload used before (UTINYINT,
USMALLINT, UINTEGER, TINYINT, ...: bench_sync's `narrow-integers` patch). Each load is its own
process, the two alternate (which goes first too), and a round loads both. Reported: the
median and best time of each table's statement, the database file's size, and the ratios.
Results: a table on stdout and `benchmarks/results/bench_types-<date>.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.baseline import baseline_cmd, prepare_baseline
from harness.processes import RESULTS, compile_csload, git_state, log, run_child
from harness.simserver import Server

KINDS = {"BIGINT": [], "narrow": ["narrow-integers"]}


def load_once(plan: Path, db: Path) -> dict[str, float]:
    child = run_child(baseline_cmd(plan, str(db)), cwd=db.parent)
    if child.returncode != 0:
        raise RuntimeError(f"load failed:\n{child.stderr[-3000:]}")
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    size = db.stat().st_size / 1e6
    db.unlink()
    statements = answer["statements"]
    # seconds: connect..close, as before (the types' cost is inside it); process: spawn to exit.
    return {"seconds": answer["seconds"], "views": statements["views"],
            "sessions": statements["sessions"], "cpu": child.cpu_seconds,
            "process": child.seconds, "file_mb": size}


def summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    return {key: {"median": round(statistics.median(s[key] for s in samples), 3),
                  "best": round(min(s[key] for s in samples), 3)}
            for key in ("seconds", "views", "sessions", "cpu", "process", "file_mb")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--dialect", choices=("contract", "clickhouse"), default="contract")
    args = parser.parse_args()
    compile_csload()
    started = datetime.now(UTC)
    samples: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="csload-bench-types-") as work:
        folder = Path(work)
        log(f"== {args.views:,} pageviews over {args.days} days ({args.dialect}): generating")
        server = Server(args.views, args.days, 32, folder / "parts", args.dialect)
        try:
            manifest = folder / "manifest.json"
            manifest.write_text(json.dumps(server.hello))
            plans = {kind: prepare_baseline(
                         manifest, folder / f"plan-{kind}.json",
                         argparse.Namespace(baseline_memory_limit=None, patch=patches))
                     for kind, patches in KINDS.items()}
            for i in range(args.rounds):
                order = list(KINDS) if i % 2 == 0 else list(KINDS)[::-1]
                for kind in order:
                    sample = load_once(plans[kind], folder / f"{kind}-{i}.duckdb")
                    samples[kind].append(sample)
                    log(f"   round {i + 1} {kind}: {sample['seconds']:.2f} s (views "
                        f"{sample['views']:.2f}, sessions {sample['sessions']:.2f}), "
                        f"{sample['file_mb']:.1f} MB")
        finally:
            server.stop()
    result = {kind: summary(s) for kind, s in samples.items()}
    wide, narrow = result["BIGINT"], result["narrow"]
    ratios = {key: round(wide[key]["median"] / narrow[key]["median"], 3)
              for key in ("seconds", "views", "sessions", "file_mb")}
    print(f"\n{'':10}{'load (median / best)':>26}{'views':>16}{'sessions':>16}{'file':>12}")
    for kind, r in result.items():
        print(f"{kind:10}{r['seconds']['median']:>17.2f} / {r['seconds']['best']:<6.2f}"
              f"{r['views']['median']:>16.2f}{r['sessions']['median']:>16.2f}"
              f"{r['file_mb']['median']:>9.1f} MB")
    print(f"{'ratio':10}{ratios['seconds']:>17.3f}x{'':7}{ratios['views']:>15.3f}x"
          f"{ratios['sessions']:>15.3f}x{ratios['file_mb']:>11.3f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench_types-{started:%Y-%m-%dT%H%M%S}.json"
    path.write_text(json.dumps({"started": started.isoformat(), "code": git_state(),
                                "options": vars(args), "result": result,
                                "bigint_over_narrow_median": ratios, "samples": samples},
                               indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
