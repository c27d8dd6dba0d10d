"""Make tests/lake/data/legacy-lake/: a lake in the format csload wrote before its lakes were
Delta tables (`_csload/manifest/<version>.json`, ledger snapshots in `_csload/ledger/<txid>/`),
written by that csload itself, for tests/lake/test_lake_upgrade.py.

It must run with the code of a csload that still has `csload.lake.manifest` (the main
worktree before issue 18), WITHOUT a PYTHONPATH that would put the Delta code first:

    cd /work/main && /work/main/.venv/bin/python \\
        /work/delta/tests/lake/data/make_legacy_lake.py [OUT]

(OUT defaults to the legacy-lake folder beside this script, which it replaces). It writes
parts with tests.support.partgen, applies them with that csload's ParquetStore, and copies
the lake folder to OUT. The lake holds:

* `views` (job 1, CSV): tests.support.hard_values' rows (ids above 2^63, strings with every
  quoting hazard, string/timestamp/integer arrays, NULLs) plus two rows without a view_time
  (dated by their run's window), over 2026-11-20 and -21; then a re-run of 2026-11-20 that
  replaced that day (run 12, which finished later than run 10, with fewer rows);
* `sessions` (job 2, JSONL), loaded with the narrow integer types an older csload gave
  catalog fields (UTINYINT, USMALLINT, UINTEGER, TINYINT and their lists): for this scope only,
  the schema is read from a copy of sessions.toml with those types, with SCALAR_TYPES to
  match (`older_sessions_schema`); and one run without a window whose rows have no
  session_date: the partition `date=__HIVE_DEFAULT_PARTITION__`;
* a failed run (13, job 1) and an expired one (22, job 2) in the ledger.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)
VIEW_EXTRA = ["session_id", "view_number", "view_time", "url"]
SESSION_FIELDS = ["session_id", "user_id", "session_date", "session_time", "session_number",
                  "device_id", "session_duration_msec", "is_excludable", "density", "language",
                  "app_events.event_type", "app_events.event_time", "app_events.view_number"]
# What an older csload loaded these engine types as (csload.load.columns._NARROW_INTEGERS).
NARROW = {"UInt8": "UTINYINT", "UInt16": "USMALLINT", "UInt32": "UINTEGER", "Int8": "TINYINT"}


def _require_manifest_code() -> None:
    try:
        import csload.lake.manifest  # noqa: F401
    except ImportError:
        sys.exit("make_legacy_lake.py needs the csload that writes the manifest format "
                 "(run it from /work/main without PYTHONPATH, see its docstring)")


def view_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Run 10's rows (2026-11-20), run 11's (-21) and the re-run 12's (-20)."""
    from tests.support.hard_values import view_rows as hard_rows

    first = hard_rows()
    # Rows without a view_time: their `_date` is the run's window start.
    first += [{"session_id": 2**64 - 100 - i, "view_number": 1, "view_time": None,
               "url": f"undated {i}", "scroll_rate": None, "fully_loaded": None,
               "errors.message": None, "errors.error_time": None, "errors.line_number": None,
               "is_first": None} for i in range(2)]
    second = []
    for row in first[:4]:
        row = dict(row)
        row["session_id"] = row["session_id"] ^ 0xFF
        row["view_time"] = row["view_time"] + timedelta(days=1)
        second.append(row)
    second.append({**first[-1], "session_id": 2**64 - 200, "url": "undated, day 2"})
    rerun = []
    for row in [*first[:6], first[-1]]:
        row = dict(row)
        row["url"] = f"re-run {row['url']}"
        rerun.append(row)
    return first, second, rerun


def session_rows(day: date | None, start: int, count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + count):
        at = datetime(2026, 11, 20, 8, i, 30) if day is None else \
            datetime(day.year, day.month, day.day, 8, i, 30)
        rows.append({
            "session_id": 2**63 + 1000 + i, "user_id": 2**64 - 1 - i,
            "session_date": day, "session_time": at,
            "session_number": 65535 - i, "device_id": -128 + i,
            "session_duration_msec": 2**32 - 1 - i, "is_excludable": 255 - i,
            "density": None if i % 2 else 2.5, "language": "fr" if i % 2 else None,
            "app_events.event_type": [255, 0][: i % 3],
            "app_events.event_time": [at, at + timedelta(seconds=1)][: i % 3],
            "app_events.view_number": [2**32 - 1, i][: (i + 1) % 3],
        })
    return rows


def older_sessions_schema(folder: Path) -> None:
    """Make csload read the `sessions` schema with an older csload's narrow integer types
    (`views` keeps today's): load_schema caches each scope when first read."""
    from csload.api import schemas

    schemas.load_schema("views")
    source = schemas.schemas_dir()
    shutil.copytree(source, folder)
    blocks = (folder / "sessions.toml").read_text(encoding="utf-8").split("[[fields]]")
    for i, block in enumerate(blocks):
        kind = re.search(r'source_type = "(?:Array\()?(?:Nullable\()?(\w+)', block)
        if kind and kind.group(1) in NARROW:
            blocks[i] = re.sub(r'duckdb_type = "BIGINT', f'duckdb_type = "{NARROW[kind.group(1)]}',
                               block)
    (folder / "sessions.toml").write_text("[[fields]]".join(blocks), encoding="utf-8")
    schemas.SCALAR_TYPES.update(NARROW)
    schemas.schemas_dir = lambda: folder
    try:
        schemas.load_schema("sessions")
    finally:
        schemas.schemas_dir = lambda: source


def build(root: Path, parts: Path) -> None:
    from csload.api.models import Run
    from csload.lake import ParquetStore
    from tests.support.hard_values import FIELDS
    from tests.support.partgen import Writer, job, run

    older_sessions_schema(parts.parent / "schemas")
    writer = Writer(parts)
    views = job(1, fields=FIELDS)
    sessions = job(2, scope="sessions", fmt="JSONL", fields=SESSION_FIELDS, frequency="once")
    first, second, rerun = view_rows()
    undated_run = Run(run_id=21, job_id=2, state="SUCCESS", start_date=None, end_date=None,
                      created_at=datetime(2026, 11, 23, tzinfo=UTC),
                      finished_at=datetime(2026, 11, 23, 1, tzinfo=UTC))
    with ParquetStore.open(root) as store:
        store.apply([writer.staged(views, run(10, 1, D1), [first[:7], first[7:]]),
                     writer.staged(views, run(11, 1, D2), [second])])
        store.apply([writer.staged(sessions, run(20, 2, D1, days=2),
                                   [session_rows(D1, 0, 3) + session_rows(D2, 3, 2)])])
        store.apply([writer.staged(sessions, undated_run, [session_rows(None, 10, 2)])])
        store.record_failed(views, run(13, 1, D3), "the part could not be read")
        store.record_expired(sessions, run(22, 2, D3), "its files expired")
    with ParquetStore.open(root) as store:   # a later sync: the re-run replaces 2026-11-20
        [outcome] = store.apply([writer.staged(views, run(12, 1, D1, finished_hours=30),
                                               [rerun])])
        assert outcome.status == "loaded", outcome


def main() -> None:
    _require_manifest_code()
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "legacy-lake"
    with tempfile.TemporaryDirectory() as tmp:
        parts = Path(tmp) / "parts"
        parts.mkdir()
        lake = Path(tmp) / "lake"
        build(lake, parts)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(lake, out)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    print(f"{out}: {len(files)} files, {sum(p.stat().st_size for p in files)} bytes")


if __name__ == "__main__":
    main()
