"""Making a lake's folders match a manifest version: swapping partitions in, recovering from a
crashed publish, removing what no version needs.

**Swaps** (local folders). A local publish stages each new partition folder under
`_csload/staging/<txid>/`, writes the manifest (the commit point), then swaps each folder in
(`finish_swaps`): with one `renameat2(RENAME_EXCHANGE)` (Linux; `renamex_np(RENAME_SWAP)` on
macOS), so a reader globbing `ROOT/<table>/*/*.parquet` sees the old or the new files of a
day, never both and never a half-written day. Where exchange is unsupported, the old folder is
renamed away and the new one in: a reader may then miss that day for the instant between the
two renames, but still never sees two versions. `swap_partition` checks the folder's file
names first, so repeating it is harmless.

**Recovery** (`recover`, when a store opens, lock held). A crash before the manifest leaves
the previous version current: its staging folder (local) or the marker's uploads (S3) are
deleted. A crash after it: the local swaps of the version's `touched` partitions are
finished, or the marker's superseded files are deleted (S3).

**Cleanup** (`cleanup`, after each version and each recovery): ledger snapshots and manifests
no longer current are removed (the last KEEP_MANIFESTS manifests are kept).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from csload.errors import StoreError
from csload.lake.fs import LakeFS, fsync_dir, fsync_file
from csload.lake.manifest import (
    KEEP_MANIFESTS,
    LEDGER_DIR,
    MANIFEST_DIR,
    MARKER_NAME,
    STAGING_DIR,
    TXID_SHAPE,
    TXN_DIR,
    Manifest,
    TxnMarker,
    manifest_name,
    manifest_versions,
    partition_dir,
    read_current,
)

log = logging.getLogger("csload.lake")


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if sys.platform.startswith("linux"):
        fn = getattr(libc, "renameat2", None)
        if fn is None:
            return False
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                       ctypes.c_uint]
        at_fdcwd, rename_exchange = -100, 2
        rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    elif sys.platform == "darwin":
        fn = getattr(libc, "renamex_np", None)
        if fn is None:
            return False
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rc = fn(os.fsencode(a), os.fsencode(b), 2)   # RENAME_SWAP
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def sync_tree(path: Path) -> None:
    """fsync every file and folder under `path` (staged files, before the commit point)."""
    for folder, _dirs, files in os.walk(path):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


def swap_partition(lake: LakeFS, manifest: Manifest, table: str, key: str) -> None:
    """Make the live folder of one partition hold exactly the manifest's files."""
    entry = manifest.tables.get(table)
    part = entry.partitions.get(key) if entry else None
    wanted = {f.rsplit("/", 1)[1] for f, _ in part.files} if part else set()
    live = lake.local_path(partition_dir(table, key))
    staged = lake.local_path(f"{STAGING_DIR}/{manifest.txid}/{partition_dir(table, key)}")
    old = lake.local_path(f"{STAGING_DIR}/{manifest.txid}/_old/{partition_dir(table, key)}")
    with lake.errors(f"swap in partition {partition_dir(table, key)}"):
        present = set(os.listdir(live)) if live.is_dir() else None
        if present is not None and present == wanted and wanted:
            return
        if not wanted:
            if present is not None:
                old.parent.mkdir(parents=True, exist_ok=True)
                os.rename(live, old)
                fsync_dir(live.parent)
            return
        if not staged.is_dir():
            raise StoreError(
                f"lake {lake.root} is damaged: partition {partition_dir(table, key)} of "
                f"version {manifest.version} is neither in place nor staged")
        if present is None:
            live.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, live)
        elif not exchange(staged, live):
            old.parent.mkdir(parents=True, exist_ok=True)
            os.rename(live, old)
            os.rename(staged, live)
        fsync_dir(live.parent)


def finish_swaps(lake: LakeFS, manifest: Manifest,
                 swap: Callable[[LakeFS, Manifest, str, str], None] = swap_partition) -> None:
    """Swap in every partition the version `manifest` touched (`swap`: a seam of the store)."""
    for table, key in manifest.touched:
        swap(lake, manifest, table, key)


def recover(lake: LakeFS) -> Manifest:
    """Finish or undo what a crashed sync left; the lake's current version (lock held)."""
    current = read_current(lake)
    if lake.local:
        staging = lake.local_path(STAGING_DIR)
        if current.txid and (staging / current.txid).is_dir():
            log.warning("lake %s: finishing version %s, which a sync published but did not "
                        "swap in whole", lake.root, current.version)
            finish_swaps(lake, current)
        if staging.is_dir():
            with lake.errors("clean the staging folder"):
                for child in staging.iterdir():
                    if child.is_symlink():   # removed, never followed
                        child.unlink()
                    else:
                        shutil.rmtree(child, ignore_errors=True)
    else:
        for entry in lake.list_files(TXN_DIR):
            name = MARKER_NAME.match(entry.path.rsplit("/", 1)[-1])
            if name is None:
                log.warning("lake %s: ignoring %r, which is not a transaction marker",
                            lake.root, entry.path[:200])
                continue
            data = lake.read_bytes(entry.path)
            if data is not None:
                marker = TxnMarker.from_bytes(data, f"{lake.root}/{entry.path}")
                if marker.txid != name.group(1):
                    raise StoreError(f"{lake.root}/{entry.path} is damaged or was tampered "
                                     "with: it names another transaction")
                if marker.txid == current.txid:
                    log.warning("lake %s: deleting the files version %s superseded",
                                lake.root, current.version)
                    lake.delete_files(marker.obsolete)
                else:
                    log.warning("lake %s: deleting the files of a sync that stopped before "
                                "publishing", lake.root)
                    lake.delete_files(marker.uploads)
            lake.delete_files([entry.path])
    cleanup(lake, current)
    return current


def cleanup(lake: LakeFS, current: Manifest) -> None:
    """Remove ledger snapshots and manifests that are no longer current."""
    for name in lake.list_dirs(LEDGER_DIR):
        if TXID_SHAPE.match(name) and f"{LEDGER_DIR}/{name}" != current.ledger:
            lake.delete_dir(f"{LEDGER_DIR}/{name}")
    old = [v for v in manifest_versions(lake) if v <= current.version - KEEP_MANIFESTS]
    lake.delete_files([manifest_name(v) for v in old])
    if lake.local:   # temporary files of a write that was killed
        lake.delete_files([e.path for e in lake.list_files(MANIFEST_DIR)
                           if e.path.rsplit("/", 1)[-1].startswith(".")])
