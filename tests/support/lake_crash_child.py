"""Run by test_lake_crash in a subprocess: apply a batch to a lake and stop dead at a moment.

argv: root storage_options_json parts_folder moment. Prints READY on reaching `moment`, then
waits for the parent's SIGKILL (it never continues on its own). The moments are the steps of
a publish (csload.lake.store): the new files written, the table committed, the ledger
committed; and, on S3, half of the upload done.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csload.lake import ParquetStore
from csload.lake.fs import LakeFS
from tests.support.lake_crash_data import batch

ROOT, OPTIONS, FOLDER, MOMENT = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]), \
    sys.argv[4]


def stop_here(name: str) -> None:
    if name == MOMENT:
        print("READY", flush=True)
        sys.stdin.read()   # blocks until killed
        raise SystemExit("parent closed stdin instead of killing")


class Store(ParquetStore):
    def _write_files(self, *args: Any) -> Any:
        files = super()._write_files(*args)
        stop_here("files-written")
        return files

    def _commit_table(self, *args: Any) -> Any:
        table = super()._commit_table(*args)
        stop_here("table-committed")
        return table

    def _commit_ledger(self, *args: Any) -> Any:
        ledger = super()._commit_ledger(*args)
        stop_here("ledger-committed")
        return ledger


def upload_one_then_stop(self: LakeFS, files: Sequence[tuple[Path, str]]) -> None:
    """Upload the first file only, then stop: a crash in the middle of the upload."""
    source, rel = files[0]
    with self.fs.open_output_stream(self.full(rel)) as out:
        out.write(source.read_bytes())
    stop_here("mid-upload")


if MOMENT == "mid-upload":
    LakeFS.upload_files = upload_one_then_stop  # type: ignore[method-assign]

store = Store.open(ROOT, storage_options=OPTIONS or None, env={})
store.apply(batch(FOLDER, write=False))
print("DONE", flush=True)
