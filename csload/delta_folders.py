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

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from csload.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

DELTA_LOG = "_delta_log"
# A csload lake's ledger table, under its root (csload.lake.layout's, not imported: the DuckDB
# target checks its database's folder here too, and must not import the lake). Its log, not
# the `_csload` folder, tells a lake: a sync refused in a folder may leave that folder behind.
LAKE_LEDGER_LOG = f"_csload/ledger_table/{DELTA_LOG}"


def enclosing_table(folder: Path) -> Path | None:
    """The nearest of `folder` (which need not exist) and its parents that is a Delta table's
    folder (it holds a `_delta_log` folder), or None. Links are followed."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / DELTA_LOG).is_dir():
            return candidate
    return None


def enclosing_table_in(fs: pafs.FileSystem, base: str) -> str | None:
    """The same in a pyarrow filesystem's terms (S3: `bucket/prefix`), up to the bucket."""
    import pyarrow.fs as pafs

    path = PurePosixPath(base)
    for candidate in (path, *path.parents):
        if str(candidate) in ("", ".", "/"):
            break
        if fs.get_file_info(f"{candidate}/{DELTA_LOG}").type == pafs.FileType.Directory:
            return str(candidate)
    return None


def inside_table_error(what: str, place: str, table: str, lake: str | None) -> ConfigError:
    """The error for `what` (e.g. "lake /data/lake/views"), at `place`, inside the Delta table
    folder `table`; `lake`: the csload lake that table belongs to, if it is one's."""
    where = "the folder of" if place.rstrip("/") == table.rstrip("/") else "inside"
    why = "its VACUUM deletes every file in its folder that its log does not name"
    if lake is not None:
        name = PurePosixPath(table).name
        return ConfigError(f"{what} is {where} table {name} of the csload lake {lake} (a "
                           f"Delta table): give the lake's root, {lake}; nothing of csload's "
                           f"can live inside a Delta table's folder ({why})")
    return ConfigError(f"{what} is {where} the Delta table {table} (it holds a {DELTA_LOG} "
                       f"folder): choose a folder outside any Delta table ({why})")


def refuse_inside_table(what: str, folder: Path) -> None:
    """ConfigError if the local `folder` (or file) is, or lies inside, a Delta table's
    folder."""
    table = enclosing_table(folder)
    if table is not None:
        lake = table.parent if (table.parent / LAKE_LEDGER_LOG).is_dir() else None
        raise inside_table_error(what, str(folder.resolve()), str(table),
                                 None if lake is None else str(lake))


def refuse_inside_table_in(what: str, fs: pafs.FileSystem, base: str, scheme: str) -> None:
    """The same for `base` in `fs` (S3: `bucket/prefix`, shown as `scheme` + path)."""
    import pyarrow.fs as pafs

    table = enclosing_table_in(fs, base)
    if table is not None:
        parent = str(PurePosixPath(table).parent)
        own = fs.get_file_info(f"{parent}/{LAKE_LEDGER_LOG}").type == pafs.FileType.Directory
        raise inside_table_error(what, scheme + base, scheme + table,
                                 scheme + parent if own else None)
