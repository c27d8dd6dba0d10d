"""The rows of a bench's lakes, per table and day: csload's through csload, the baseline's as a
folder-listing reader sees it; and their duplicate keys and size on disk."""

from __future__ import annotations

from pathlib import Path

TABLES = ("sessions", "views")


def csload_counts(root: Path) -> dict[str, dict[str, int]]:
    """Rows per table and day of csload's lake, read through csload (its ledger's versions)."""
    import csload

    con = csload.connect(parquet=str(root))
    try:
        return {t: {str(day): int(n) for day, n in con.execute(
                    f'SELECT _date, count(*) FROM "{t}" GROUP BY ALL').fetchall()}
                for t in TABLES}
    finally:
        con.close()


def baseline_counts(root: Path) -> dict[str, dict[str, int]]:
    """Rows per table and day of the baseline's lake, as a folder-listing reader sees it."""
    import duckdb

    con = duckdb.connect()
    try:
        return {t: {str(day): int(n) for day, n in con.execute(
                    f"SELECT date, count(*) FROM read_parquet('{root / t}/*/*.parquet', "
                    "hive_partitioning = true) GROUP BY ALL").fetchall()}
                for t in TABLES}
    finally:
        con.close()


def totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    return {t: sum(days.values()) for t, days in counts.items()}


def duplicate_keys(root: Path) -> dict[str, int]:
    import csload

    con = csload.connect(parquet=str(root))
    try:
        found = {}
        for table, key in (("views", "(session_id, view_number)"), ("sessions", "session_id")):
            row = con.execute(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}").fetchone()
            found[table] = int(row[0]) if row else -1
        return found
    finally:
        con.close()


def lake_mb(root: Path) -> float:
    """Size of the tables' Parquet files (csload's `_csload/` ledger excluded)."""
    return round(sum(f.stat().st_size for t in TABLES for f in (root / t).rglob("*.parquet"))
                 / 1e6, 1)
