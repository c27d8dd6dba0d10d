"""Folders a sync makes for its own use (a lake sync's downloads, a lake's work database),
and the ones killed syncs left behind.

A lake has no lock (two syncs of one lake may run at once; Delta's log makes the second
fail at its commit), so such a folder is one sync's alone: made new by `OwnFolder.make`
(0700, a name no one can guess) and held, while the sync uses it, by flock(2) on the folder
itself. The kernel drops the flock when the process ends, however it ends (kill -9, the
OOM killer), so `remove_abandoned` tells a killed sync's folder (free: removed) from a running
sync's (held: left alone) without guessing from ages. Only the user's own folders are ever
removed; another user's are left as they are.

Where flock(2) does not exist (Windows), a folder cannot be held: `remove_abandoned` removes
nothing there, and a killed sync's folders stay until removed by hand.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:   # Windows: no flock(2)
    fcntl = None  # type: ignore[assignment]

_DIRECTORY = getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _open_folder(path: Path) -> int:
    return os.open(path, os.O_RDONLY | _DIRECTORY)


def _try_hold(fd: int) -> bool:
    """flock(2) the open folder `fd` for this process; False if another process holds it."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class OwnFolder:
    """A folder made for this process, held by it until `remove` (or until it ends)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def make(cls, parent: Path, prefix: str) -> OwnFolder:
        """A new folder `<parent>/<prefix><random>`, 0700, held by this process. OSError if
        it cannot be made."""
        while True:
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            if fcntl is None:
                return cls(path, None)
            try:
                fd = _open_folder(path)
            except FileNotFoundError:
                continue   # `remove_abandoned` of another sync took it before it was held
            if _try_hold(fd):
                try:
                    same = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    return cls(path, fd)
            # Another sync held it for a moment, found it free and removed it: make another.
            os.close(fd)

    def remove(self) -> None:
        """Remove the folder and everything in it, then let go of it (idempotent)."""
        if self._fd is None and not self.path.exists():
            return
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)   # drops the flock
            self._fd = None

    def __repr__(self) -> str:
        return f"OwnFolder({str(self.path)!r})"


def fresh_folder(parent: str | Path | None, prefix: str) -> OwnFolder:
    """A new folder of this process's own, `<parent>/<prefix><random>` (parent None: the
    system's temporary folder), once the user's folders there with that prefix that no
    running process holds (killed syncs') are removed."""
    where = Path(tempfile.gettempdir() if parent is None else parent)
    remove_abandoned(where, prefix)
    return OwnFolder.make(where, prefix)


def remove_abandoned(parent: Path, prefix: str) -> list[Path]:
    """Remove the folders `<parent>/<prefix>*` that are the user's own and that no running
    process holds (those of killed syncs); return them. Links, files and other users'
    folders are left alone, as are held ones."""
    removed: list[Path] = []
    if fcntl is None:
        return removed
    try:
        entries = list(parent.glob(f"{prefix}*"))
    except OSError:
        return removed
    for entry in entries:
        try:
            status = entry.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid():
            continue
        try:
            fd = _open_folder(entry)
        except OSError:
            continue
        try:
            if _try_hold(fd):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        finally:
            os.close(fd)
    return removed
