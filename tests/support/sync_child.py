"""Run by the sync tests in a subprocess: the real `csload` command, stopped at a chosen point.

    python -m tests.support.sync_child sync --db ... [csload arguments]

(with the repository root on PYTHONPATH: tests.support.children.child_command and child_environ).

CSLOAD_TEST_STOP = "<point>:<n>" picks the n-th time (from 1) the sync reaches <point>:

    download        a chunk of a part was just written to its staging file
    part-verified   a part was verified and renamed into place in the staging folder
    staged          every part of a run is on disk; the run is about to go to the writer
    ledger-ensure   opening the database: the ledger tables exist, not yet committed
    store-apply     the writer is about to apply a batch of staged runs (DuckDBStore.apply)
    insert          inside a load transaction, one INSERT ... SELECT done
    apply           inside a load transaction, rows inserted, before the supersede rules
    window-rule     inside a load transaction, before the window rule
    ledger-run      inside a load transaction, the batch's run ledger rows written
    before-commit   a load transaction is about to commit
    after-commit    a load transaction has just committed (its staging files still on disk)
    record-failed   a failed (or expired) run's ledger row is written, not yet committed
    discard         a batch was applied; its staging files are about to be removed

and what happens there: CSLOAD_TEST_ACTION = "kill" (default: SIGKILL this process, a real
kill -9), "hold" (print HOLDING, block until stdin is closed, then carry on) or "count" (stop
nowhere; at exit, write how many times each point was reached, as JSON, to the file named by
CSLOAD_TEST_COUNTS). The seams are patched on csload's classes and functions; nothing else of
csload changes.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any

from csload.cli import main
from csload.load.duckdb import DuckDBStore
from csload.load.ledger import Ledger
from csload.pipeline import sync as pipeline
from csload.transfer import stage as download
from csload.transfer import storage

POINT, _, COUNT = os.environ.get("CSLOAD_TEST_STOP", "").partition(":")
TARGET = int(COUNT or "1")
ACTION = os.environ.get("CSLOAD_TEST_ACTION", "kill")

_lock = threading.Lock()
_seen = {"n": 0}
_counts: Counter[str] = Counter()
_state = threading.local()


def reached(point: str) -> None:
    if ACTION == "count":
        with _lock:
            _counts[point] += 1
        return
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


if ACTION == "count":
    def _write_counts() -> None:
        with open(os.environ["CSLOAD_TEST_COUNTS"], "w") as fh:
            json.dump(dict(_counts), fh)

    atexit.register(_write_counts)


def _flag(name: str) -> bool:
    return bool(getattr(_state, name, False))


def _flagged(name: str, func: Any) -> Any:
    """`func` with the thread-local flag `name` set while it runs."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setattr(_state, name, True)
        try:
            return func(*args, **kwargs)
        finally:
            setattr(_state, name, False)
    return wrapper


_write = storage._TempFile.write
_temp_commit = storage._TempFile.commit


def write(self: Any, chunk: bytes) -> None:
    _write(self, chunk)
    reached("download")


def temp_commit(self: Any) -> bool:
    is_gzip = _temp_commit(self)
    reached("part-verified")
    return is_gzip


_stage_run = download.stage_run


async def stage_run(*args: Any, **kwargs: Any) -> Any:
    staged = await _stage_run(*args, **kwargs)
    reached("staged")
    return staged


_discard = pipeline._discard


def discard(*args: Any) -> None:
    reached("discard")
    _discard(*args)


_ensure = Ledger.ensure
_record_runs = Ledger.record_runs


def ensure(self: Any) -> None:
    _ensure(self)
    reached("ledger-ensure")


def record_runs(self: Any, *args: Any, **kwargs: Any) -> None:
    _record_runs(self, *args, **kwargs)
    if _flag("loading"):
        reached("ledger-run")


_apply = DuckDBStore.apply
_insert_group = DuckDBStore._insert_group
_apply_key_rule = DuckDBStore._apply_key_rule
_apply_window_rule = DuckDBStore._apply_window_rule
_load_batch = DuckDBStore._load_batch
_record_unloaded = DuckDBStore.record_unloaded
_commit = DuckDBStore._commit


def apply(self: Any, *args: Any) -> Any:
    reached("store-apply")
    return _apply(self, *args)


def insert_group(self: Any, *args: Any) -> None:
    _insert_group(self, *args)
    reached("insert")


def apply_key_rule(self: Any, *args: Any) -> None:
    reached("apply")
    _apply_key_rule(self, *args)


def apply_window_rule(self: Any, *args: Any) -> None:
    reached("window-rule")
    _apply_window_rule(self, *args)


def commit(self: Any) -> None:
    # Only the commits of load transactions count as (before|after)-commit (not opening the
    # ledger, nor recording a failed run: that one is record-failed).
    if _flag("loading"):
        reached("before-commit")
    elif _flag("recording"):
        reached("record-failed")
    _commit(self)
    if _flag("loading"):
        reached("after-commit")


storage._TempFile.write = write  # type: ignore[method-assign]
storage._TempFile.commit = temp_commit  # type: ignore[method-assign]
download.stage_run = stage_run  # type: ignore[assignment]
pipeline._discard = discard
Ledger.ensure = ensure  # type: ignore[method-assign]
Ledger.record_runs = record_runs  # type: ignore[method-assign]
DuckDBStore.apply = apply  # type: ignore[method-assign]
DuckDBStore._insert_group = insert_group  # type: ignore[method-assign]
DuckDBStore._apply_key_rule = apply_key_rule  # type: ignore[method-assign,assignment]
DuckDBStore._apply_window_rule = apply_window_rule  # type: ignore[method-assign]
DuckDBStore._load_batch = _flagged("loading", _load_batch)  # type: ignore[method-assign]
DuckDBStore.record_unloaded = _flagged("recording", _record_unloaded)  # type: ignore[method-assign]
DuckDBStore._commit = commit  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
