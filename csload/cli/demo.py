"""`csload demo`: the simulator in-process, a real sync into DuckDB, and real queries, each
printed above its answer.

The demo replaces its database on every run, and so it replaces only a database it made: one
whose ledger carries the demo's mark (`_csload.meta` key `demo`). Any other file given as
`--db` (a real sync's database, a file that is not a database at all) is refused, untouched.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import anyio
import click
import duckdb
from rich.syntax import Syntax
from rich.table import Table

from csload.cli.common import fail, stderr, stdout
from csload.cli.display import SyncDisplay, summary_table
from csload.cli.status import print_status
from csload.config import Settings
from csload.errors import CsloadError
from csload.load.duckdb import connect
from csload.pipeline.report import SyncReport
from csload.pipeline.sync import sync_async
from csload.target import read_status

DEMO_DB = "csload-demo.duckdb"
# The demo's mark in its database's ledger (csload.load.ledger's _csload.meta): what lets the next
# `csload demo` replace the file.
DEMO_MARK = ("demo", "made by csload demo")

# The demo's questions, printed above their answers: SQL to copy. The codes of `device_id`
# come from the lookup table csload writes beside the data (csload.load.lookups); the
# simulator's pageviews job exports view_duration_msec as `duration_ms`. docs/queries.md has
# more, each one run by a test.
PAGEVIEWS_PER_DAY_AND_DEVICE = """
SELECT v._date AS day,
       d.device,
       count(*) AS pageviews,
       count(DISTINCT v.session_id) AS sessions,
       round(avg(v.duration_ms) / 1000, 1) AS avg_seconds_on_page
FROM views AS v
LEFT JOIN codes.device_types AS d ON d.device_id = v.device_id
GROUP BY ALL
ORDER BY day, pageviews DESC
"""

TOP_PAGES_BY_TIME = """
SELECT path,
       count(*) AS pageviews,
       round(sum(duration_ms) / 1000 / 60, 1) AS minutes_on_page,
       round(avg(scroll_rate), 1) AS avg_scroll_pct
FROM views
GROUP BY path
ORDER BY minutes_on_page DESC
LIMIT 8
"""

DEMO_QUERIES = (
    ("pageviews per day and device", PAGEVIEWS_PER_DAY_AND_DEVICE),
    ("top pages by time on page", TOP_PAGES_BY_TIME),
)


def _query_table(db: Path, sql: str, title: str) -> Table:
    con = connect(db, read_only=True)
    try:
        result = con.execute(sql)
        names = [column[0] for column in result.description or ()]
        rows = result.fetchall()
    finally:
        con.close()
    table = Table(title=title)
    for name in names:
        table.add_column(name)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    return table


def _print_query(db: Path, title: str, sql: str) -> None:
    """The question, the SQL that answers it, and the answer."""
    stdout.print()
    stdout.print(Syntax(f"-- {title}\n{sql.strip()}", "sql", theme="ansi_dark",
                        background_color="default", word_wrap=True))
    stdout.print(_query_table(db, sql, title))


def _is_demo_database(db: Path) -> bool:
    """Whether `db` is a DuckDB database that `csload demo` made (its ledger has the mark)."""
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return False   # not a DuckDB file, or one that cannot be opened: not the demo's
    try:
        found = con.execute("SELECT value FROM _csload.meta WHERE key = ?",
                            [DEMO_MARK[0]]).fetchone()
    except duckdb.Error:
        return False   # no csload ledger: not the demo's
    finally:
        con.close()
    return found is not None and found[0] == DEMO_MARK[1]


def _remove_old_demo(db: Path) -> None:
    """Remove the previous demo's database (and its .wal); refuse, touching nothing, any file
    that is not a demo database: `--db` once deleted whatever it was given."""
    wal = db.with_name(db.name + ".wal")
    if db.is_symlink() or db.exists():
        if db.is_symlink() or not db.is_file() or not _is_demo_database(db):
            fail(f"--db {db}: that file is not a database made by csload demo, so the demo "
                 "will not replace it; choose another path (--db), or remove the file "
                 "yourself if it is not needed")
        db.unlink()
    elif wal.exists():
        fail(f"--db {db}: a file {wal.name} is there without its database; choose another "
             "path (--db), or remove that file yourself if it is not needed")
    wal.unlink(missing_ok=True)


def _mark_demo(db: Path) -> None:
    """Mark the database the demo made, whether its sync went well or not: the next demo
    replaces it. (A sync that failed before its ledger existed leaves nothing to mark.)"""
    if not db.exists():
        return
    try:
        con = duckdb.connect(str(db))
    except duckdb.Error:
        return
    try:
        con.execute("INSERT OR REPLACE INTO _csload.meta VALUES (?, ?)", list(DEMO_MARK))
    except duckdb.Error:
        pass
    finally:
        con.close()


@click.command()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=DEMO_DB,
              show_default=True,
              help="Database to create (a demo database there is replaced; any other file is "
                   "refused).")
@click.option("--days", default=3, show_default=True, type=click.IntRange(1, 7),
              help="Days of daily runs the simulator serves.")
def demo(db: Path, days: int) -> None:
    """Start the simulator, sync a few days of both scopes into DuckDB, and query them."""
    from csload.simulator import SimConfig, Simulator

    _remove_old_demo(db)
    # Files kept beyond the 7 days of the service: with --days 6 or 7 the legacy job's run
    # (seeded the day before the window) had expired, and the demo exited 3 on its own data.
    simulator = Simulator(SimConfig(days=days, real_time_clock=True, file_retention_days=14))
    handle = simulator.start_in_thread()
    try:
        client_id, client_secret, project_id = simulator.credentials
        settings = Settings(client_id=client_id, client_secret=client_secret,
                            project_id=project_id, auth_url=handle.base_url)
        stdout.print(f"Simulator of the Export API on {handle.base_url} "
                     f"({days} days of daily runs)")

        async def run() -> SyncReport:
            with SyncDisplay(stderr) as display:
                return await sync_async(settings, db=db, on_event=display)

        try:
            report = anyio.run(run)
        except CsloadError as exc:
            fail(str(exc))
    finally:
        handle.stop()
        _mark_demo(db)
    stdout.print(summary_table(report))
    print_status(read_status(db))
    for title, sql in DEMO_QUERIES:
        _print_query(db, title, sql)
    stdout.print(f"\nThe data is in {db}: open it with `duckdb {shlex.quote(str(db))}`, or in "
                 f"Python with `csload.connect({str(db)!r})`; more queries in docs/queries.md.")
    sys.exit(report.exit_code)
