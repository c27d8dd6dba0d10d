"""What a lake's ledger costs as it grows: the per-batch ledger commit and the open, at 1 k,
10 k and 100 k runs.

    python benchmarks/bench_ledger.py                      # 1000, 10000, 100000 runs (~1 min)
    python benchmarks/bench_ledger.py --runs 1000,300000

A lake's ledger (csload.lake.ledger) is rewritten whole by every published batch, and read
whole by every open: the concern is a lake whose ledger has grown for years (an hourly job
makes 8,760 runs a year). For each size, a fresh local lake gets a ledger of that many loaded
runs (two parts each, one job, as `_csload.runs` / `_csload.parts` rows) and a lake state
(csload.lake.state) whose table holds those runs, 24 to a day, as the publish records them.
Timed, in this process (the ledger's own steps, not a sync):

* **publish**: one batch's ledger commit, `ParquetStore._publish` with no data table changed
  (`export_ledger` + the Delta commit of the ledger table): what each batch adds;
* **open**: `ParquetStore.open` of the lake (recovery, reading the ledger table and the lake
  state, `import_ledger` into the work database): what each sync adds;
* the ledger table's size on disk.

Each figure is the best of `--repeat` (3). Results: a table on stdout and
`benchmarks/results/bench_ledger-<date>.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from csload.lake.layout import LEDGER_TABLE_DIR
from csload.lake.state import TableState
from csload.lake.store import ParquetStore

RESULTS = Path(__file__).resolve().parent / "results"
RUNS_PER_DAY = 24   # an hourly job


def fill_ledger(store: ParquetStore, runs: int) -> None:
    """`runs` loaded runs of one hourly job, with two parts each, in the work database's
    ledger, and their rows in the lake state of a table `views`."""
    con = store._work.con
    con.execute("INSERT INTO _csload.jobs VALUES (1, 'hourly views', 'views', 'CSV', "
                "'HOURLY', 'session_id,view_number', 'views', TIMESTAMP '2020-01-01', "
                "TIMESTAMP '2026-12-01')")
    con.execute(
        "INSERT INTO _csload.runs SELECT 1000 + i, 1, 'views', "
        "TIMESTAMP '2020-01-01' + INTERVAL (i) HOUR, "
        "TIMESTAMP '2020-01-01' + INTERVAL (i + 1) HOUR, "
        "TIMESTAMP '2020-01-01' + INTERVAL (i + 2) HOUR, 1000 + i, 'loaded', 5000, 5000, "
        "2000000, 2, TIMESTAMP '2026-12-01', TIMESTAMP '2026-12-01', NULL FROM range(?) t(i)",
        [runs])
    con.execute("INSERT INTO _csload.parts SELECT 1000 + i, p, 1, 1000000, 2500, "
                "TIMESTAMP '2026-12-01' FROM range(?) t(i), range(1, 3) u(p)", [runs])
    partitions: dict[str, dict[int, int]] = {}
    for i in range(runs):
        day = datetime.fromtimestamp(1577836800 + 3600 * i, UTC).date().isoformat()
        partitions.setdefault(day, {})[1000 + i] = 5000
    store._snapshot.state.tables["views"] = TableState(0, partitions)


def create_views(root: Path) -> None:
    """An empty Delta table `views` (version 0) for the lake state to name."""
    timestamp = pa.timestamp("us", tz="UTC")
    empty = pa.table({"session_id": pa.array([], pa.decimal128(20, 0)),
                      "_job_id": pa.array([], pa.decimal128(20, 0)),
                      "_run_id": pa.array([], pa.decimal128(20, 0)),
                      "_date": pa.array([], pa.date32()),
                      "_loaded_at": pa.array([], timestamp),
                      "date": pa.array([], pa.string())})
    write_deltalake(str(root / "views"), empty, mode="error", partition_by=["date"])


def measure(runs: int, repeat: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="csload-bench-ledger-"))
    try:
        root = folder / "lake"
        store = ParquetStore.open(root)
        try:
            create_views(root)   # after the open: its recovery drops a table no ledger names
            fill_ledger(store, runs)
            publish = []
            for _ in range(repeat):
                start = time.perf_counter()
                store._publish()
                publish.append(time.perf_counter() - start)
        finally:
            store.close()
        opens = []
        for _ in range(repeat):
            start = time.perf_counter()
            again = ParquetStore.open(root)
            opens.append(time.perf_counter() - start)
            loaded = len(again.loaded_runs())
            again.close()
        assert loaded == runs, (loaded, runs)
        ledger = root / LEDGER_TABLE_DIR
        newest = max((p for p in ledger.glob("*.parquet")), key=lambda p: p.stat().st_mtime)
        return {"runs": runs, "publish_s": min(publish), "open_s": min(opens),
                "ledger_file_mb": newest.stat().st_size / 1e6}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="1000,10000,100000",
                        help="ledger sizes, comma-separated (default: 1000,10000,100000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = [measure(int(n), args.repeat) for n in args.runs.split(",")]
    print(f"{'runs':>8}  {'publish s':>9}  {'open s':>7}  {'ledger file MB':>14}")
    for r in results:
        print(f"{r['runs']:>8,}  {r['publish_s']:>9.3f}  {r['open_s']:>7.3f}  "
              f"{r['ledger_file_mb']:>14.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_ledger-{datetime.now(UTC):%Y-%m-%dT%H%M%S}.json"
    out.write_text(json.dumps({"results": results, "repeat": args.repeat}, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
