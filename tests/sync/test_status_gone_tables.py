"""`csload status` says which tables are gone (dropped, a lake table's folder deleted), which
the next sync loads again. A lake's showed the ledger's row count as if it were still there,
a database's showed 0 rows with no word (found 2026-12-07)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.config import Settings


@pytest.mark.parametrize("kind", ["db", "lake"])
def test_status_says_a_table_is_gone_and_the_next_sync_brings_it_back(
        settings: Settings, tmp_path: Path, kind: str) -> None:
    target = {"db": tmp_path / "cs.duckdb"} if kind == "db" else {"parquet": tmp_path / "lake"}
    assert not csload.sync(settings, **target).failed   # type: ignore[arg-type]
    views_rows = {t.table: t.rows for t in csload.status(**target).tables}["views"]
    assert views_rows > 0 and csload.status(**target).dropped == ()
    if kind == "db":
        con = duckdb.connect(str(target["db"]))
        con.execute("DROP TABLE views")
        con.close()
    else:
        shutil.rmtree(tmp_path / "lake" / "views")

    state = csload.status(**target)
    assert state.dropped == ("views",)
    assert {t.table: t.rows for t in state.tables}["views"] == 0
    assert state.to_json()["droppedTables"] == ["views"]
    flag = ["--db", str(target["db"])] if kind == "db" else ["--parquet", str(tmp_path / "lake")]
    shown = CliRunner().invoke(main, ["status", *flag], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert ("gone: table views is no longer there (dropped, or its folder deleted): the next "
            "csload sync loads its runs again") in shown.output

    again = csload.sync(settings, **target)   # type: ignore[arg-type]
    assert not again.failed
    # In the report too (`--json`), not only in the log (QA, 2026-12-08).
    said = [w for w in again.warnings if "are loaded again" in w]
    assert len(said) == 1 and "views" in said[0], again.warnings
    assert csload.sync(settings, **target).warnings == []   # said once
    after = csload.status(**target)
    assert after.dropped == () and {t.table: t.rows for t in after.tables}["views"] == views_rows


def test_another_writers_commits_kept_by_a_sync_are_in_its_report(
        settings: Settings, tmp_path: Path) -> None:
    """docs/lake.md: a delete made with another Delta writer is kept, "a warning says so";
    that was a log line only, and `--json` said `"warnings": []` (QA, 2026-12-08)."""
    from deltalake import DeltaTable

    lake = tmp_path / "lake"
    assert not csload.sync(settings, parquet=lake).failed
    DeltaTable(str(lake / "views")).delete("view_number = 1")

    report = csload.sync(settings, parquet=lake)

    said = [w for w in report.warnings if "kept the commits of table views" in w]
    assert len(said) == 1, report.warnings
    assert csload.sync(settings, parquet=lake).warnings == []
