"""Run by the sync tests in a subprocess: the real `csload` command, stopped at a chosen point.

    python sync_child.py sync --db ... [csload arguments]

CSLOAD_TEST_STOP = "<point>:<n>" picks the n-th time (from 1) the sync reaches <point>:

    download        a chunk of a part was just written to its staging file
    apply           inside a load transaction, rows inserted, before the supersede rules
    before-commit   a load transaction is about to commit
    after-commit    a load transaction has just committed (its staging files still on disk)

and what happens there: CSLOAD_TEST_ACTION = "kill" (default: SIGKILL this process, a real
kill -9) or "hold" (print HOLDING, block until stdin is closed, then carry on).
The seams are patched on csload's classes; nothing else of csload changes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from csload.api import storage
from csload.cli import main
from csload.load.duckdb import DuckDBStore

POINT, _, COUNT = os.environ["CSLOAD_TEST_STOP"].partition(":")
TARGET = int(COUNT or "1")
ACTION = os.environ.get("CSLOAD_TEST_ACTION", "kill")

_lock = threading.Lock()
_seen = {"n": 0}
_loading = threading.local()


def reached(point: str) -> None:
    if point != POINT:
        return
    with _lock:
        _seen["n"] += 1
        hit = _seen["n"] == TARGET
    if not hit:
        return
    if ACTION == "hold":
        print("HOLDING", flush=True)
        sys.stdin.read()
        return
    os.kill(os.getpid(), signal.SIGKILL)


_write = storage._TempFile.write


def write(self: Any, chunk: bytes) -> None:
    _write(self, chunk)
    reached("download")


_apply_key_rule = DuckDBStore._apply_key_rule
_load_batch = DuckDBStore._load_batch
_commit = DuckDBStore._commit


def apply_key_rule(self: Any, *args: Any) -> None:
    reached("apply")
    _apply_key_rule(self, *args)


def load_batch(self: Any, *args: Any) -> Any:
    # Only the commits of load transactions count (not opening the ledger, nor recording a
    # failed run).
    _loading.active = True
    try:
        return _load_batch(self, *args)
    finally:
        _loading.active = False


def commit(self: Any) -> None:
    loading = getattr(_loading, "active", False)
    if loading:
        reached("before-commit")
    _commit(self)
    if loading:
        reached("after-commit")


storage._TempFile.write = write  # type: ignore[method-assign]
DuckDBStore._apply_key_rule = apply_key_rule  # type: ignore[method-assign,assignment]
DuckDBStore._load_batch = load_batch  # type: ignore[method-assign,assignment]
DuckDBStore._commit = commit  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
