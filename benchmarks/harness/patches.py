"""Experimental changes monkeypatched into the measured syncs (`--patch NAME[=VALUE]`, results
files `-patched`); the default run always measures the code as it is."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ab_patches


def _patch_memory_limit(limit: str) -> None:
    """`SET memory_limit` on the store's connection (DuckDB's default: 80% of RAM)."""
    _patch_duckdb_set(f"memory_limit:{limit}")


def _patch_duckdb_set(spec: str) -> None:
    """`SET name = 'value'` on the store's connection, after its own settings (NAME:VALUE)."""
    from csload.load.duckdb import DuckDBStore

    name, _, value = spec.partition(":")
    original = DuckDBStore.__init__

    def init(self: Any, con: Any, path: Path, *args: Any, **kwargs: Any) -> None:
        con.execute(f"SET {name} = '{value}'")
        original(self, con, path, *args, **kwargs)

    DuckDBStore.__init__ = init  # type: ignore[method-assign]


def _patch_max_staged_runs(value: str) -> None:
    """A different default for `Limits.max_staged_runs` (16; the writer's batches hold at most
    that less `download_concurrency`)."""
    from csload.config import Limits

    defaults = Limits.__init__.__kwdefaults__
    assert defaults is not None and "max_staged_runs" in defaults
    defaults["max_staged_runs"] = int(value)


def _patch_narrow_integers() -> None:
    """Integers at the catalog's guessed widths (UTINYINT, USMALLINT, UINTEGER, TINYINT, ...),
    as csload loaded them before every narrower integer became BIGINT: what the wider types
    cost (docs/formats.md)."""
    import dataclasses

    from csload.api import schemas

    # Read (and cache) the schemas first: their files are checked against the mapping.
    cached = [schemas.load_schema(scope) for scope in schemas.SCOPES]
    schemas.SCALAR_TYPES.update({"UInt8": "UTINYINT", "UInt16": "USMALLINT",
                                 "UInt32": "UINTEGER", "Int8": "TINYINT", "Int16": "SMALLINT",
                                 "Int32": "INTEGER"})
    for schema in cached:   # every later load_schema() returns these objects
        narrow = tuple(dataclasses.replace(f, duckdb_type=schemas.duckdb_type_of(f.source_type))
                       for f in schema.fields)
        object.__setattr__(schema, "fields", narrow)


# (no-gzip-verify, measured here, is now csload's own behaviour.)
PATCHES: dict[str, Callable[[], None]] = {"narrow-integers": _patch_narrow_integers}


# Patches that change the SQL: the baseline applies them too (same expressions on both sides).
# (The array decoding fast path, the batch filling and the faster gzip check, measured here as
# patches, are now in csload itself.)
SQL_PATCHES: tuple[str, ...] = ("narrow-integers",)


# Patches with an argument: NAME=VALUE.
PATCHES_WITH_VALUE: dict[str, Callable[[str], None]] = {
    "memory-limit": _patch_memory_limit,
    "max-staged-runs": _patch_max_staged_runs,
    "duckdb-set": _patch_duckdb_set,
}


def known_patch(spec: str) -> bool:
    """Whether `spec` names a patch: NAME of PATCHES, or NAME=VALUE of PATCHES_WITH_VALUE."""
    name, _, value = spec.partition("=")
    return (name in PATCHES_WITH_VALUE and bool(value)) or (name in PATCHES and not value)


def apply_patch(spec: str) -> None:
    if not known_patch(spec):
        raise SystemExit(f"unknown patch {spec!r}: one of {sorted(PATCHES)} or "
                         f"{[n + '=VALUE' for n in PATCHES_WITH_VALUE]}")
    name, _, value = spec.partition("=")
    if value:
        PATCHES_WITH_VALUE[name](value)
    else:
        PATCHES[name]()


def patched_cli(args: argparse.Namespace) -> None:
    """The csload CLI with `--patch` changes (and CSLOAD_BENCH_AB's) applied (experiments)."""
    for spec in args.patch or ():
        apply_patch(spec)
    ab_patches.apply(os.environ.get(ab_patches.ENV))
    from csload.cli import main

    main(args=args.rest, prog_name="csload")
