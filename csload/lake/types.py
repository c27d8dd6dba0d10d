"""csload's column types in a Delta table, and back.

Delta Lake has no unsigned integers and two timestamp types; Spark, Trino and Databricks read
`timestamp` (UTC) everywhere, `timestamp_ntz` only with a newer protocol. So a lake's files
hold, for csload's DuckDB types:

    UBIGINT            DECIMAL(20,0)        every UInt64 value exactly (ids above 2^63 too)
    TIMESTAMP          TIMESTAMPTZ (UTC)    Delta `timestamp`: the same instant, marked UTC
    T[]                the list of T's lake type
    BIGINT, FLOAT, DOUBLE, VARCHAR, DATE, BOOLEAN: unchanged

and `csload.connect(parquet=...)` and the work database cast them back (`to_csload`), so a
DuckDB user sees the DuckDB target's types. A timestamp is cast back with `timezone('UTC', x)`,
never `::TIMESTAMP`, which would convert to the session's time zone.

A table's columns are read from its log's schema, which whoever can write the storage can
write: only the Delta types below map to a csload type (a closed list, never SQL text), and
column names must have the shape csload gives them. Anything else is a StoreError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from csload.lake.layout import COLUMN_NAME, PARTITION_COLUMN, damaged
from csload.load.lineage import LINEAGE_COLUMNS
from csload.load.sqltext import quote_ident

# The Delta schema's primitive type names (deltalake's `PrimitiveType.type`) and the csload
# type each stands for. Narrower integers are widened, as csload.load.columns does.
_FROM_DELTA = {
    "long": "BIGINT", "integer": "BIGINT", "short": "BIGINT", "byte": "BIGINT",
    "float": "FLOAT", "double": "DOUBLE", "string": "VARCHAR", "boolean": "BOOLEAN",
    "date": "DATE", "timestamp": "TIMESTAMP",
    "decimal(20,0)": "UBIGINT",
}


# Narrow integers (the widths an older csload loaded) are written as BIGINT: Delta has no
# unsigned type, and csload reads every integer back as BIGINT anyway.
_NARROW = ("UTINYINT", "USMALLINT", "UINTEGER", "TINYINT", "SMALLINT", "INTEGER")
_TO_LAKE = {"UBIGINT": "DECIMAL(20,0)", "TIMESTAMP": "TIMESTAMPTZ"} | dict.fromkeys(_NARROW,
                                                                                  "BIGINT")


def _lake_scalar(kind: str) -> str:
    return _TO_LAKE.get(kind, kind)


def lake_type(kind: str) -> str:
    """The DuckDB type a csload column of type `kind` is written as."""
    if kind.endswith("[]"):
        return _lake_scalar(kind[:-2]) + "[]"
    return _lake_scalar(kind)


def to_lake(name: str, kind: str, alias: str = "") -> str:
    """The SQL expression writing column `name` (csload type `kind`) in its lake type."""
    ref = f"{alias}{quote_ident(name)}"
    base = kind[:-2] if kind.endswith("[]") else kind
    if base == "TIMESTAMP":
        cast = "timezone('UTC', x)"
        out = (f"list_transform({ref}, lambda x: {cast})" if kind.endswith("[]")
               else cast.replace("x", ref))
    elif base in _TO_LAKE:
        out = f"CAST({ref} AS {lake_type(kind)})"
    else:
        out = ref
    return f"{out} AS {quote_ident(name)}"


def to_csload(name: str, kind: str, alias: str = "") -> str:
    """The SQL expression reading column `name` of a lake file back as csload type `kind`."""
    ref = f"{alias}{quote_ident(name)}"
    base = kind[:-2] if kind.endswith("[]") else kind
    if base == "TIMESTAMP":
        one = "timezone('UTC', x)"   # TIMESTAMPTZ -> the naive UTC value
        out = (f"list_transform({ref}, lambda x: {one})" if kind.endswith("[]")
               else one.replace("x", ref))
    else:
        out = f"CAST({ref} AS {kind})"
    return f"{out} AS {quote_ident(name)}"


def select_to_lake(columns: Sequence[tuple[str, str]], alias: str = "") -> str:
    return ", ".join(to_lake(n, t, alias) for n, t in columns)


def select_to_csload(columns: Sequence[tuple[str, str]], alias: str = "") -> str:
    return ", ".join(to_csload(n, t, alias) for n, t in columns)


def _delta_type(value: Any, where: str) -> str:
    """The csload type of one field type of a Delta schema (deltalake.schema objects)."""
    kind = getattr(value, "type", None)
    if isinstance(kind, str):   # PrimitiveType
        mapped = _FROM_DELTA.get(kind.replace(" ", ""))
        if mapped is not None:
            return mapped
    element = getattr(value, "element_type", None)
    if element is not None and getattr(element, "element_type", None) is None:
        inner = _delta_type(element, where)
        return inner + "[]"
    raise damaged(where, "column type", kind if isinstance(kind, str) else value)


def csload_columns(schema: Any, where: str) -> list[tuple[str, str]]:
    """A Delta table's columns as (name, csload type), in order, without the partition column:
    StoreError for a name or type csload does not write."""
    columns: list[tuple[str, str]] = []
    seen: set[str] = set()
    for field in schema.fields:
        name = field.name
        if name == PARTITION_COLUMN:
            continue
        if not isinstance(name, str) or name in seen or not (
                (COLUMN_NAME.match(name) and not name.startswith("_"))
                or name in LINEAGE_COLUMNS):
            raise damaged(where, "column name", name)
        seen.add(name)
        columns.append((name, _delta_type(field.type, where)))
    return columns
