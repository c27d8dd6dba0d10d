"""What the queries look like outside docs/queries.md: `csload demo` prints each of its queries
above its answer, with codes decoded by the lookup tables; the tables' column comments come with
the columns, and a later sync leaves a comment an analyst wrote.

The device names are the contract's (section 8), typed in tests/support/contract_codes.py.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import csload
from csload.cli import main
from csload.cli.demo import DEMO_QUERIES
from csload.config import Settings
from csload.simulator import Simulator
from tests.support.contract_codes import DEVICES


def test_demo_prints_each_query_above_its_answer(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "demo.duckdb"
    result = CliRunner().invoke(main, ["demo", "--db", str(db), "--days", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title, sql in DEMO_QUERIES:
        printed = out.find(sql.strip())
        assert printed >= 0, f"the SQL of {title!r} is not printed"
        # The answer's table (its title) comes after the SQL.
        assert out.find(title, printed) > printed
        assert " CASE " not in sql
    assert "codes.device_types" in out
    con = duckdb.connect(str(db), read_only=True)
    try:
        devices = {r[1] for r in con.execute(DEMO_QUERIES[0][1]).fetchall()}
    finally:
        con.close()
    # Decoded by the lookup table: names, not codes.
    assert devices and devices <= set(DEVICES.values())
    assert any(name in out for name in devices)


def test_comments_come_with_the_columns_and_a_later_sync_leaves_them(
        settings: Settings, simulator: Simulator, db_path: Path) -> None:
    assert csload.sync(settings, db=db_path).exit_code == 0
    con = csload.connect(db_path)
    try:
        described = dict(con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'views' "
            "AND schema_name = 'main'").fetchall())
        assert "desktop" in described["device_id"]
        assert all(described[name] for name in ("_job_id", "_run_id", "_date", "_loaded_at"))
        # An analyst documents a column their own way.
        con.execute("COMMENT ON COLUMN views.device_id IS 'ours'")
        days = con.execute("SELECT count(DISTINCT _date) FROM views").fetchone()
    finally:
        con.close()
    simulator.advance_days(1)
    report = csload.sync(settings, db=db_path)
    assert report.exit_code == 0 and report.rows > 0
    con = csload.connect(db_path, read_only=True)
    try:
        assert con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'views' "
                           "AND column_name = 'device_id'").fetchone() == ("ours",)
        assert con.execute("SELECT count(DISTINCT _date) FROM views").fetchone() != days
    finally:
        con.close()
