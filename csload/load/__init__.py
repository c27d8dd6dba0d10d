"""Loading downloaded runs into a store: `DuckDBStore` (exactly once, ledger in the same commit).

Imports are lazy so that `csload.ledger` (which uses `csload.load.columns`) and
`csload.load.duckdb` (which uses `csload.ledger`) do not import each other in a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from csload.load.duckdb import DuckDBStore, RunOutcome, StagedPart, StagedRun, connect

__all__ = ["DuckDBStore", "RunOutcome", "StagedPart", "StagedRun", "connect"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from csload.load import duckdb as _duckdb

        return getattr(_duckdb, name)
    raise AttributeError(f"module 'csload.load' has no attribute {name!r}")
