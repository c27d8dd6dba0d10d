"""The lineage columns csload adds to every table, and their types: a leaf, so that the loader
(csload.load.columns) and the lake's type checks (csload.lake.types) share one list."""

from __future__ import annotations

LINEAGE_COLUMNS: dict[str, str] = {
    "_job_id": "UBIGINT",
    "_run_id": "UBIGINT",
    "_date": "DATE",
    "_loaded_at": "TIMESTAMP",
}
