"""A place for csload's data inside a Delta table's folder, refused before anything is written.

A Delta table's VACUUM (csload's own housekeeping, Spark's, Databricks', delta-rs') deletes
every file under the table's folder that the table's log does not name, once it is older than
the retention window. A lake whose root is such a folder or lies below one, or a DuckDB
database file there, would lose its files days after they were written, without a word.
Seen with `csload sync --parquet lake/views`: the folder of one of a lake's tables taken for
the lake; csload wrote a second lake inside the first one's `views` table, whose next vacuum
would have deleted the inner lake's data files.

Local folders are checked at every open (a few `stat` calls); an S3 lake when it is created
(a lookup per level of its prefix, csload.lake.fs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

from csload.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

DELTA_LOG = "_delta_log"
# A csload lake's ledger table, under its root (csload.lake.layout's, not imported: the DuckDB
# target checks its database's folder here too, and must not import the lake). Its log, not
# the `_csload` folder, tells a lake: a sync refused in a folder may leave that folder behind.
LAKE_LEDGER_LOG = f"_csload/ledger_table/{DELTA_LOG}"

IsDir = Callable[[PurePath], bool]


def enclosing_table(place: PurePath, is_dir: IsDir) -> PurePath | None:
    """The nearest of `place` (which need not exist) and its parents that is a Delta table's
    folder (`is_dir` says it holds a `_delta_log` folder), or None. S3: `bucket/prefix`,
    up to the bucket."""
    for candidate in (place, *place.parents):
        if str(candidate) != "." and is_dir(candidate / DELTA_LOG):
            return candidate
    return None


def inside_table_error(what: str, place: str, table: str, lake: str | None) -> ConfigError:
    """The error for `what` (e.g. "lake /data/lake/views"), at `place`, inside the Delta table
    folder `table`; `lake`: the csload lake that table belongs to, if it is one's."""
    where = "the folder of" if place == table else "inside"
    why = "its VACUUM deletes every file in its folder that its log does not name"
    if lake is not None:
        name = PurePosixPath(table).name
        return ConfigError(f"{what} is {where} table {name} of the csload lake {lake} (a "
                           f"Delta table): give the lake's root, {lake}; nothing of csload's "
                           f"can live inside a Delta table's folder ({why})")
    return ConfigError(f"{what} is {where} the Delta table {table} (it holds a {DELTA_LOG} "
                       f"folder): choose a folder outside any Delta table ({why})")


def _refuse(what: str, place: PurePath, is_dir: IsDir, scheme: str = "") -> None:
    # A lake's own folder (ROOT/_csload) was taken for a damaged lake, and locally written
    # into (ROOT/_csload/_csload/ledger_table): found by QA, 2026-12-07.
    for candidate in (place, *place.parents):
        if candidate.name == "_csload" and is_dir(candidate.parent / LAKE_LEDGER_LOG):
            where = "is" if candidate == place else "is inside"
            raise ConfigError(f"{what} {where} the csload lake {scheme}{candidate.parent}'s "
                              f"own folder {candidate.name}: give the lake's root, "
                              f"{scheme}{candidate.parent}")
    table = enclosing_table(place, is_dir)
    if table is not None:
        own = is_dir(table.parent / LAKE_LEDGER_LOG)
        raise inside_table_error(what, f"{scheme}{place}", f"{scheme}{table}",
                                 f"{scheme}{table.parent}" if own else None)


def refuse_inside_table(what: str, place: Path) -> None:
    """ConfigError if the local `place` (a folder or a file; links followed) is, or lies
    inside, a Delta table's folder."""
    _refuse(what, place.resolve(), lambda path: Path(path).is_dir())


def refuse_inside_table_in(what: str, fs: pafs.FileSystem, base: str, scheme: str) -> None:
    """The same for `base` in `fs` (S3: `bucket/prefix`, shown as `scheme` + path)."""
    import pyarrow.fs as pafs

    def is_dir(path: PurePath) -> bool:
        return bool(fs.get_file_info(str(path)).type == pafs.FileType.Directory)

    _refuse(what, PurePosixPath(base), is_dir, scheme)
