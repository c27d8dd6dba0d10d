"""The ledger's tables, by name: a leaf, so that every target that stores the ledger (the
DuckDB file, csload.load.ledger; the lake's ledger table, csload.lake.ledger) names them alike.
"""

from __future__ import annotations

LEDGER_SCHEMA = "_csload"
LEDGER_NAMES = ("meta", "jobs", "runs", "parts", "tombstones")
