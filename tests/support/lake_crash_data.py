"""The runs of the lake crash tests: tests/support/load_crash_data.py's first day, then its batch (a
re-run of that day and a new day) with a smaller new day: a lake writes whole files anyway."""

from __future__ import annotations

from pathlib import Path

from csload.transfer.staged import StagedRun
from tests.support import load_crash_data as crash_data
from tests.support.load_crash_data import D1, first

__all__ = ["D1", "NEXT", "batch", "first"]

NEXT = 3000   # rows of the new day


def batch(folder: Path, write: bool = True) -> list[StagedRun]:
    return crash_data.batch(folder, write, next_rows=NEXT)
