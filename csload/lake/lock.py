"""One writer per lake: the lock in `_csload/`, and the clear message when it is taken.

* **Local folder**: `_csload/lock` held with `flock(2)`. The kernel releases it when the
  process ends, even by `kill -9`; the file also says who holds it (host, pid, since), for the
  message the second sync gets. The file is created 0600, never through a symbolic link
  (`O_NOFOLLOW`; LakeFS refuses any link inside `_csload/` too) and never truncated on open:
  a link planted there cannot make csload write into another file. One that exists already
  must be a plain file of this user with a single name, else the sync stops and says so.
* **Object storage**: pyarrow cannot make a conditional write (`If-None-Match: *`), so the lock
  is a lease object `_csload/lock.json` holding an owner id, host, pid, start time and an expiry
  that a background thread renews every `ttl / 4` seconds. To take it, csload reads it; a live
  lease of someone else fails fast with StoreLockedError; a missing or expired one (or one whose
  holder was on this host and is no longer running) is overwritten with ours, then read back to
  check that ours is the one that stuck. Before publishing each version the writer checks the
  lease is still its own (`verify`), so a writer that lost it (paused beyond the ttl) stops
  instead of publishing.

  Known limit, documented for users: two syncs started within the same few milliseconds can
  both read "free" and both write; the read-back catches most such races but not all (S3 is
  strongly consistent, but the two PUTs and the two read-backs may interleave). A lake synced
  by one scheduler at a time never meets it. A crashed holder on another machine blocks new
  syncs until its lease expires (`ttl`, 120 s by default).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from csload.errors import StoreError, StoreLockedError
from csload.lake.fs import LakeFS

log = logging.getLogger("csload.lake")

LOCK_FILE = "_csload/lock"
LEASE_OBJECT = "_csload/lock.json"
DEFAULT_TTL = 120.0


class LakeLock(Protocol):
    def verify(self) -> None: ...

    def release(self) -> None: ...


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _holder() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": _boot_id(),
            "since": datetime.now(UTC).isoformat(timespec="seconds")}


def _locked_message(root: str, info: dict[str, Any] | None) -> str:
    if not info:
        return f"lake {root} is being synced by another process"
    return (f"lake {root} is being synced by another process "
            f"({info.get('host', '?')}, pid {info.get('pid', '?')}, "
            f"since {info.get('since', '?')})")


def _locked(root: str, info: dict[str, Any] | None) -> StoreLockedError:
    """The error a sync meets while another one holds the lake, with what to do."""
    holder = _locked_message(root, info)
    pid = info.get("pid") if info else None
    return StoreLockedError(f"{holder}: let it finish, or wait for it with "
                            "`csload sync --wait DURATION`", holder=holder,
                            pid=pid if isinstance(pid, int) else None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalLock:
    """flock(2) on `_csload/lock` of a local lake."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, lake: LakeFS) -> LocalLock:
        try:
            import fcntl
        except ImportError:   # Windows
            raise StoreError("local lakes need flock(2) (Linux, macOS); "
                             "use an s3:// lake on this system") from None

        path = lake.local_path(LOCK_FILE)
        with lake.errors("create the lock file"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = _open_lock_file(path, lake.root)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = orjson.loads(os.pread(fd, 4096, 0) or b"null")
            except (OSError, orjson.JSONDecodeError):
                info = None
            os.close(fd)
            raise _locked(lake.root, info if isinstance(info, dict) else None) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock lake {lake.root}: {exc}") from None
        # Who holds the lock, for the message a second sync prints. Only informative: on a
        # full disk the lock is still held (and the sync fails later, naming the lake).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, orjson.dumps(_holder()), 0)
        return cls(fd)

    def verify(self) -> None:
        if self._fd is None:
            raise StoreError("the lake lock was released")

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)   # closing drops the flock
            self._fd = None


def _open_lock_file(path: Path, root: str) -> int:
    """The lock file, opened without following a link or truncating; checked to be this
    user's own plain file (a hard link would make the holder line land in another file)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise StoreError(f"lake {root}: the lock file {path} is a symbolic link; csload "
                         "follows no link inside _csload/: remove it (and find out who made "
                         "it)") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a plain file"
    elif info.st_nlink != 1:
        problem = "has other names (hard links)"
    elif hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        problem = f"belongs to another user (uid {info.st_uid})"
    if problem is not None:
        os.close(fd)
        raise StoreError(f"lake {root}: the lock file {path} {problem}; remove it when no "
                         "sync of this lake is running")
    if info.st_mode & 0o077:
        os.fchmod(fd, 0o600)   # made by an older csload: only its holder line is in it
    return fd


class LeaseLock:
    """A renewed lease object on object storage (see the module docstring)."""

    def __init__(self, lake: LakeFS, info: dict[str, Any], ttl: float) -> None:
        self.lake = lake
        self.info = info
        self.ttl = ttl
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="csload-lake-lease",
                                        daemon=True)

    @classmethod
    def acquire(cls, lake: LakeFS, ttl: float = DEFAULT_TTL) -> LeaseLock:
        current = cls._read(lake)
        if current is not None and not cls._stale(current):
            raise _locked(lake.root, current)
        if current is not None:
            log.warning("lake %s: taking over the lock of a sync that is gone (%s, pid %s)",
                        lake.root, current.get("host"), current.get("pid"))
        info = {**_holder(), "owner": uuid.uuid4().hex}
        lock = cls(lake, info, ttl)
        lock._write()
        check = cls._read(lake)
        if check is None or check.get("owner") != info["owner"]:
            raise _locked(lake.root, check)
        lock._thread.start()
        return lock

    @staticmethod
    def _read(lake: LakeFS) -> dict[str, Any] | None:
        data = lake.read_bytes(LEASE_OBJECT)
        if data is None:
            return None
        try:
            info = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return info if isinstance(info, dict) else None

    @staticmethod
    def _stale(info: dict[str, Any]) -> bool:
        try:
            expires = datetime.fromisoformat(str(info["expires"]))
        except (KeyError, ValueError):
            return True
        if expires <= datetime.now(UTC):
            return True
        same_machine = (info.get("host") == socket.gethostname()
                        and info.get("boot_id") == _boot_id())
        pid = info.get("pid")
        return same_machine and isinstance(pid, int) and not _pid_alive(pid)

    def _write(self) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=self.ttl)
        self.info["expires"] = expires.isoformat()
        self.lake.write_bytes(LEASE_OBJECT, orjson.dumps(self.info))

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                current = self._read(self.lake)
                if current is None or current.get("owner") != self.info["owner"]:
                    self.lost = _locked_message(self.lake.root, current)
                    return
                self._write()
            except StoreError as exc:   # a network blip: try again at the next beat
                log.warning("lake %s: could not renew the lock: %s", self.lake.root, exc)

    def verify(self) -> None:
        """Raise unless the lease is still ours (called right before each publish)."""
        current = self._read(self.lake)
        if self.lost is None and (current is None
                                  or current.get("owner") != self.info["owner"]):
            self.lost = _locked_message(self.lake.root, current)
        if self.lost is not None:
            raise StoreLockedError(f"this sync lost the lock of the lake: {self.lost}")
        if self._stale(current or {}):
            self._write()   # renewal fell behind (a long pause): renew before publishing

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            current = self._read(self.lake)
            if current is not None and current.get("owner") == self.info["owner"]:
                self.lake.delete_files([LEASE_OBJECT])
        except StoreError as exc:
            log.warning("lake %s: could not release the lock: %s", self.lake.root, exc)


def acquire(lake: LakeFS, ttl: float = DEFAULT_TTL) -> LakeLock:
    """The lake's write lock; StoreLockedError if another sync holds it."""
    if lake.local:
        return LocalLock.acquire(lake)
    return LeaseLock.acquire(lake, ttl)
