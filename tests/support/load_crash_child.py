"""Run by test_load_crash in a subprocess: apply a batch and stop dead at a chosen moment.

argv: db_path parts_folder moment. It prints READY when it reaches `moment` and then waits
for the parent's SIGKILL (it never continues on its own).
"""

from __future__ import annotations

import sys
from pathlib import Path

from csload.load.duckdb import DuckDBStore
from tests.support.load_crash_data import batch

MOMENT = sys.argv[3]


ARMED = False   # only moments inside apply() count, not the commit of open()


def stop_here(name: str) -> None:
    if ARMED and name == MOMENT:
        print("READY", flush=True)
        sys.stdin.read()   # blocks until killed
        raise SystemExit("parent closed stdin instead of killing")


class Store(DuckDBStore):
    def _apply_key_rule(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        stop_here("after-insert")
        return super()._apply_key_rule(*args, **kwargs)

    def _apply_window_rule(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        stop_here("before-window-delete")
        return super()._apply_window_rule(*args, **kwargs)

    def _commit(self) -> None:
        stop_here("before-commit")
        super()._commit()
        stop_here("after-commit")


store = Store.open(Path(sys.argv[1]))
ARMED = True
store.apply(batch(Path(sys.argv[2]), write=False))
print("DONE", flush=True)
