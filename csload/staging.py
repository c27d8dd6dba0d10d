"""The local folder a sync stages its downloads in (csload.target decides where).

Made private (0700) and the user's own: one another user owns (or a link of theirs) is refused,
never used or removed. A database's sync empties it (the database's lock makes that sync the
only one). A lake has no lock, so each of its syncs stages in a folder of its own inside it
(`own_folder_in`, csload.scratch), and the folder itself is kept with what is in it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from csload.config import STAGING_DIR_ENV, staging_path
from csload.errors import ConfigError, StoreError
from csload.scratch import OwnFolder, fresh_folder

# How to put the downloads elsewhere, for messages about the staging folder.
STAGING_CHOICE = f"--staging-dir, staging_dir in csload.toml, or {STAGING_DIR_ENV}"
# A lake sync's own staging folder in the lake's (csload.scratch).
SYNC_FOLDER_PREFIX = "sync-"


def os_reason(exc: OSError) -> str:
    """An OSError's reason in a few words, for a message that names the path itself."""
    if isinstance(exc, FileExistsError):
        return "a file has that name"
    return exc.strerror or type(exc).__name__


def probe_writable(folder: Path) -> None:
    """Create and remove a file in `folder`: the one check of writability that holds for
    root, ACLs and read-only mounts alike (os.access does not)."""
    handle, name = tempfile.mkstemp(prefix=".csload-probe-", dir=folder)
    os.close(handle)
    os.unlink(name)


def refuse_foreign(path: Path, status: os.stat_result, what: str) -> None:
    if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
        raise StoreError(
            f"the staging folder {path} {what} another user (uid {status.st_uid}): csload "
            "neither uses nor removes it (that user could read or swap the downloads); "
            "remove it as that user, or choose a staging folder elsewhere "
            f"({STAGING_CHOICE})")


# The folders csload stages a job's runs in (csload.transfer.stage.run_dir).
RUN_FOLDER = re.compile(r"job-[0-9]+")


def remove_run_folders(folder: Path) -> None:
    """Remove csload's own run folders (`job-<id>`) in `folder`; nothing else there."""
    for entry in folder.iterdir():
        if RUN_FOLDER.fullmatch(entry.name) and not entry.is_symlink():
            shutil.rmtree(entry)


def own_folder_in(staging: Path) -> OwnFolder:
    """A folder of this sync's own in a lake's staging folder (csload.scratch), once the
    user's own folders of killed syncs there are removed."""
    def attempt() -> OwnFolder:
        remove_run_folders(private_parent(staging))   # an older csload's, staged in it
        # Made through `staging`, a link's path if it is one: release_staging keeps links.
        return fresh_folder(staging, SYNC_FOLDER_PREFIX)

    for _ in range(2):
        with contextlib.suppress(FileNotFoundError):
            # (Another sync removed the folder, empty, as it finished: made again.)
            return attempt()
    return attempt()


def private_parent(path: Path) -> Path:
    """`path` as a folder of the user's own that only the user can write, kept with what is
    in it (other syncs of the lake stage there at once); the folder it is, or a link of the
    user's own leads to. Created 0700 if missing; another user's is refused (StoreError).
    Writable by others, it is made not to be: another user could rename a sync's folder in it
    and put one of theirs under its name."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        path.mkdir(mode=0o700)
        return path
    refuse_foreign(path, status, "is owned by")
    real = path
    if stat.S_ISLNK(status.st_mode):
        real = path.resolve()
        status = real.lstat()
        refuse_foreign(path, status, "leads to a folder owned by")
    if not stat.S_ISDIR(status.st_mode):
        raise FileExistsError(path)
    if status.st_mode & 0o022:
        real.chmod(stat.S_IMODE(status.st_mode) & ~0o022)
    return real


def make_private_folder(path: Path) -> None:
    """`path` as a new, empty folder of the user's only (0700), created exclusively. A
    leftover there of the user's own is removed whole first (its mode does not matter: it is
    not reused); another user's is refused (StoreError). A link of the user's own (a
    staging folder moved to another disk) is kept, and only csload's own run folders in the
    folder it leads to (`job-<id>`, csload.transfer.stage.run_dir) are removed: whatever else the
    user keeps there is theirs."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        path.mkdir(mode=0o700)
        return
    refuse_foreign(path, status, "is owned by")
    if stat.S_ISLNK(status.st_mode):
        real = path.resolve()
        refuse_foreign(path, real.lstat(), "leads to a folder owned by")
        if not real.is_dir():
            raise FileExistsError(path)
        remove_run_folders(real)
        return
    if not stat.S_ISDIR(status.st_mode):
        raise FileExistsError(path)
    shutil.rmtree(path)
    # Exclusive: a folder someone made in its place meanwhile is an error, not reused.
    path.mkdir(mode=0o700)


def check_staging_root(value: str | Path) -> Path:
    """A staging folder the user chose: it must be an existing folder (csload creates only its
    own subfolder there, so that a mistyped path does not grow a tree of folders)."""
    path = staging_path(value, "staging_dir")
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise ConfigError(f"staging folder {path} {state}: create it, or choose another "
                          f"({STAGING_CHOICE})")
    return path
