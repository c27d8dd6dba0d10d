"""Caps on what one run's files may hold: beyond one, THAT run fails, never the sync.

A part comes from storage that csload does not control, so its shape is checked against
`Limits` (csload.config) before DuckDB reads it (issue 16):

* columns of a part's header (CSV) or first object (JSONL): `max_columns`. 3,000 of them made
  DuckDB run out of memory, which aborted the whole sync at every sync until the run expired.
* columns the job does not list: `max_unknown_columns`. Each one becomes a permanent VARCHAR
  column of the table (300 of them added 300 columns to `views`).
* characters of one column name: `max_column_name` (the name is not repeated in the message).
* parts one run lists: `max_run_parts`, checked by csload.transfer.stage right after the run's
  detail, before anything is downloaded (a run listing 10^6 parts was downloaded whole),
  and again by the loader for runs staged by other means (`Store.apply`).

Values are checked while they load (csload.load.sql `refused_values`: dates and times out of
years 1 to 9999, negative row-key ids), and a batch that runs out of memory is retried run by
run (csload.load.duckdb): `out_of_memory` is the failure of a run that does not fit alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from csload.errors import CsloadError, PartParseError, StoreError, part_label
from csload.load.parts import PartFile, parse_error

if TYPE_CHECKING:
    from csload.config import Limits
    from csload.load.columns import JobLayout


def check_part_shape(part: PartFile, layout: JobLayout, limits: Limits) -> None:
    """PartParseError (line 1) when a part's header (CSV) or first object's keys (JSONL) are
    beyond the caps. A CSV part without header starts with data: the loader checks that row
    against the job's columns instead."""
    if part.header is not None and part.has_header:
        names, what = part.header, "the header"
    elif part.keys is not None:
        names, what = part.keys, "the first object"
    else:
        return
    if len(names) > limits.max_columns:
        raise parse_error(part, 1, f"{what} has {len(names)} columns, more than the "
                          f"{limits.max_columns} csload accepts; raise [limits] max_columns "
                          "to load the run")
    longest = max((len(n) for n in names), default=0)
    if longest > limits.max_column_name:
        raise parse_error(part, 1, f"{what} has a column name of {longest} characters, more "
                          f"than the {limits.max_column_name} csload accepts; raise [limits] "
                          "max_column_name to load the run")
    known = layout.by_source()
    unknown = sum(1 for n in set(names) if n not in known)
    if unknown > limits.max_unknown_columns:
        raise parse_error(part, 1, f"{what} has {unknown} columns the job does not list, "
                          f"each of which would become a permanent column of the table; "
                          f"csload adds at most {limits.max_unknown_columns} (raise [limits] "
                          "max_unknown_columns to load the run)")


def out_of_memory(exc: BaseException) -> bool:
    """Whether a load failed because DuckDB ran out of memory (the store wraps its errors)."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    return isinstance(cause, duckdb.OutOfMemoryException)


def out_of_memory_error(job_id: int, run_id: int, memory_limit: str) -> CsloadError:
    """The failure of a run that ran out of memory while loaded alone."""
    return PartParseError(
        f"{part_label(job_id, run_id, None)}: DuckDB ran out of memory loading the run, even "
        f"alone, within csload's memory cap for this target ({memory_limit}, whatever the "
        "machine has): a row of its parts is too wide, or a list in it too long, to load "
        "under that cap; the next csload sync tries it again",
        job_id=job_id, run_id=run_id)
