"""Run by a sync test in a subprocess: `csload.sync()` in a script whose own SIGTERM handler
raises (sys.exit, as a library user's or Airflow's does), while the writer is inside a
statement.

    python -m tests.support.raising_handler_child DB

The first load starts with a statement of about a second on the store's connection; BUSY is
printed as it starts (the test sends SIGTERM then). Once the sync is stopped it prints RAISED
<exception type>, then CONNECT OK when this same process can open the database again (the
sync closed its store), else CONNECT FAILED <why>.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import csload
from csload.load.duckdb import DuckDBStore

_apply = DuckDBStore.apply
_busy = {"done": False}


def busy_apply(self: DuckDBStore, *args: Any) -> Any:
    if not _busy["done"]:
        _busy["done"] = True
        print("BUSY", flush=True)
        self.con.execute("SELECT sum(i % 7) FROM range(400000000) t(i)").fetchall()
    return _apply(self, *args)


DuckDBStore.apply = busy_apply  # type: ignore[method-assign]


def main(db: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        csload.sync(db=db)
    except BaseException as exc:  # what the handler raised, through the sync
        print(f"RAISED {type(exc).__name__}", flush=True)
    try:
        csload.connect(db, read_only=True).close()
    except csload.CsloadError as exc:
        print(f"CONNECT FAILED {exc}", flush=True)
    else:
        print("CONNECT OK", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
