"""The lake the hostile-input tests tamper with (tests/lake/test_lake_hostile*.py): built
once per module by csload, copied for each test beside a canary folder of old files, and
the checks that a crafted lake is refused (a StoreError naming the lake and the value, no
SQL) or unaffected, and that nothing outside the lake was touched."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from csload.errors import StoreError
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run

DAY = date(2026, 11, 20)
VIEW_FIELDS = ["session_id", "view_number", "view_time", "url"]
VIEWS = [(1, "a"), (2, "b")]          # (session_id, url) of the lake's views, as built
RERUN_VIEWS = [(9, "z")]              # after `sync_one_run`
TABLE_ROWS = {"views": 2, "pages": 1}
# csload's own SQL in a message (DuckDB's "LINE 1: ..." excerpt, a statement): a refusal
# names what is wrong, it never echoes the query it would have run.
RAW_SQL = re.compile(r"LINE \d+:|\bSELECT\b.*\bFROM\b|CREATE (TABLE|VIEW)|INSERT INTO|"
                     r"read_parquet\(")
OLD = time.time() - 30 * 86400   # past any retention window: a vacuum would delete it


# --- a lake to attack, and a canary beside it ------------------------------------------------

def view_row(session: int, url: str, day: date = DAY) -> dict[str, Any]:
    return {"session_id": session, "view_number": 1,
            "view_time": datetime(day.year, day.month, day.day, 12), "url": url}


def build_lake(folder: Path) -> Path:
    """A lake with two tables, `views` (2 rows) and `pages` (1 row), one day each."""
    parts = folder / "parts"
    parts.mkdir(parents=True)
    writer = Writer(parts)
    views = writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, DAY),
                          [[view_row(s, u) for s, u in VIEWS]])
    pages = writer.staged(job(2, fields=VIEW_FIELDS), run(20, 2, DAY), [[view_row(3, "c")]],
                          table="pages")
    with Lake.local(folder / "lake").open() as store:
        outcomes = store.apply([views, pages])
    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    return folder / "lake"


def tree(folder: Path) -> dict[str, bytes]:
    """Every entry under `folder`: a file's bytes, a folder as <dir>."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


@dataclass
class Crafted:
    """A copy of the built lake to tamper with, and the canary folder beside it."""

    root: Path
    outside: Path
    writer: Writer
    before: dict[str, bytes] = field(default_factory=dict)

    @property
    def lake(self) -> Lake:
        return Lake.local(self.root)

    @property
    def pwned(self) -> Path:
        """Where a crafted SQL statement would write: it must never exist."""
        return self.outside.parent / "pwned.csv"


def copy_lake(pristine: Path, tmp_path: Path) -> Crafted:
    root = tmp_path / "lake"
    shutil.copytree(pristine, root, symlinks=True)
    outside = tmp_path / "outside"
    (outside / "date=2026-11-19").mkdir(parents=True)
    for name in ("precious.txt", "date=2026-11-19/precious.parquet"):
        (outside / name).write_text("keep me")
        os.utime(outside / name, (OLD, OLD))
    parts = tmp_path / "parts"
    parts.mkdir()
    return Crafted(root, outside, Writer(parts), tree(outside))


def open_and_close(lake: Lake) -> None:
    with lake.open():
        pass


def read_views(lake: Lake) -> list[tuple[Any, ...]]:
    con = lake.connect()
    try:
        return con.execute("SELECT session_id, url FROM views ORDER BY session_id").fetchall()
    finally:
        con.close()


def sync_one_run(c: Crafted) -> None:
    """A sync of a re-run of the views job's day (its rows replace the first run's, so the day
    is read and rewritten): it commits `views` and the ledger, then vacuums both."""
    staged = c.writer.staged(job(1, fields=VIEW_FIELDS), run(11, 1, DAY),
                             [[view_row(s, u) for s, u in RERUN_VIEWS]])
    with c.lake.open() as store:
        [outcome] = store.apply([staged])
    assert outcome.status == "loaded", outcome


def refusal(attempt: Callable[[], object]) -> StoreError | None:
    try:
        attempt()
    except StoreError as exc:
        return exc
    return None


def assert_outside_untouched(c: Crafted) -> None:
    assert tree(c.outside) == c.before, "a file outside the lake root was changed or deleted"
    assert not c.pwned.exists(), "SQL from a crafted file ran"


def assert_refused(c: Crafted, *words: str) -> None:
    """Opening the store, connect and status each refuse with a StoreError naming the lake and
    `words`, and no SQL of csload's; nothing outside the root touched."""
    for what, attempt in (("open", lambda: open_and_close(c.lake)),
                          ("connect", lambda: read_views(c.lake)),
                          ("status", c.lake.status)):
        exc = refusal(attempt)
        assert exc is not None, f"{what} accepted the crafted lake"
        message = str(exc)
        assert str(c.root) in message, f"{what}: {message}"
        for word in words:
            assert word in message, f"{what}: {message}"
        assert not RAW_SQL.search(message), f"{what} shows csload's SQL: {message}"
    assert_outside_untouched(c)


def assert_unaffected(c: Crafted) -> None:
    """The crafted input changes nothing a user sees; nothing outside the root touched."""
    open_and_close(c.lake)
    assert read_views(c.lake) == VIEWS
    assert {t.table: t.rows for t in c.lake.status().tables} == TABLE_ROWS
    assert_outside_untouched(c)


# --- crafting the ledger table -------------------------------------------------------------------
