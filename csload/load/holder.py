"""Another process holds the target: who it is, and waiting for it to let go.

DuckDB lets one process write a database file and no other process open it meanwhile, not
even read-only; a process that only reads shuts out writers the same way. So an analyst's
notebook connection stops a cron `csload sync`, and a running sync stops `csload status`.
`StoreLockedError` names the holder (`describe_process`: its PID and a short, safe form of its
command line), and `open_when_free` retries an open until the holder has gone, for
`csload sync --wait DURATION` (the `lock_wait` setting). Within one process DuckDB's lock
does not apply: a second sync of the same file is refused by `claim_in_process`, and a
connection of the other mode by DuckDB itself (`same_process_error`). `open_error` says why
an open failed, these causes and the others. Such connections share the database instance's
settings too: a store puts back those it changed (`restore_settings`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

import anyio
import duckdb

from csload.errors import StoreError, StoreLockedError
from csload.load.sqltext import sql_str

T = TypeVar("T")

# How often a waiting sync tries to open the target again: often enough that a cron job
# starts soon after a notebook closes its connection, rarely enough to cost nothing.
RETRY_INTERVAL = 1.0

# The command line of the holder is shown at most this long, and only its first words: an
# argument may be a secret (`csload sync --client-secret ...`), so words stop at the first
# option other than `-m MODULE`.
_MAX_WORDS = 3
_MAX_CHARS = 80
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def describe_process(pid: int, executable: str | None = None) -> str | None:
    """A short description of process `pid` from /proc/PID/cmdline ("python -m
    ipykernel_launcher", "csload sync"), else the basename of `executable`, else None."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:   # not Linux, another user's process under hidepid, or gone already
        raw = b""
    argv = [word for word in raw.decode(errors="replace").split("\0") if word]
    if not argv:
        return os.path.basename(executable) if executable else None
    words = [os.path.basename(argv[0])]
    rest = iter(argv[1:])
    for word in rest:
        if len(words) >= _MAX_WORDS:
            break
        if word == "-m":
            words += [word, next(rest, "")]
        elif word.startswith("-"):
            break
        else:
            # A script or a subcommand: its name says what runs; its folder says nothing more.
            words.append(os.path.basename(word) if "/" in word else word)
    text = _UNPRINTABLE.sub("?", " ".join(w for w in words if w))
    return text if len(text) <= _MAX_CHARS else text[:_MAX_CHARS - 1] + "…"


def human_duration(seconds: float) -> str:
    """300 -> "5m", 90 -> "90s", 3600 -> "1h": how a `--wait` is written back; beyond an hour
    to the minute, 15067200.4 -> "4185h 20m" (not "1.50672e+07s")."""
    whole = round(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole > 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{seconds:g}s"


async def open_when_free(open_target: Callable[[], Awaitable[T]], *, wait: float,
                         on_wait: Callable[[str], None],
                         interval: float = RETRY_INTERVAL) -> T:
    """`open_target()`, tried again every `interval` seconds for up to `wait` seconds while
    another process holds the target (StoreLockedError); `on_wait` gets one line, once, saying
    what it waits for. After `wait`, the last StoreLockedError is raised, saying how long it
    waited. Cancelling (Ctrl-C) stops the waiting at once: only the sleep is cancellable, and
    `open_target` shields its own open if it needs to."""
    deadline: float | None = None
    while True:
        try:
            return await open_target()
        except StoreLockedError as exc:
            now = anyio.current_time()
            if wait <= 0:
                raise
            if deadline is None:
                deadline = now + wait
                on_wait(f"{exc.holder}; waiting up to {human_duration(wait)} for it to be free")
            elif now >= deadline:
                raise StoreLockedError(f"{exc} (after waiting {human_duration(wait)})",
                                       holder=exc.holder, pid=exc.pid) from None
            await anyio.sleep(min(interval, max(deadline - now, 0.0)))


# DuckDB 2.x: 'IO Error: Could not set lock on file "X": Conflicting lock is held in
# /usr/bin/python3.11 (PID 123). However, you would be able to open this database in read-only
# mode, ...' (that last sentence only when the holder itself only reads).
_DUCKDB_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


# Why a process cannot write a database another one has open, and the first thing to do.
WRITER_SHUT_OUT = ("DuckDB lets no process write a database that another process has open; "
                   "close that connection (or let that process finish)")


def duckdb_locked_error(path: Path, message: str, *, read_only: bool) -> StoreLockedError:
    """The StoreLockedError for DuckDB's "Could not set lock" `message`, met opening `path`
    (read-only or not): who holds the file and what to do, in one line."""
    found = _DUCKDB_HOLDER.search(message)
    pid = int(found["pid"]) if found else None
    reader = "read-only mode" in message
    who = ""
    if pid is not None:
        name = describe_process(pid, found["exe"] if found else None)
        kind = ", a read-only connection" if reader else ""
        who = f" (PID {pid}{f': {name}' if name else ''}{kind})"
    if read_only:
        # Opening read-only fails only when the holder writes.
        holder = f"database {path} is open for writing in another process{who}"
        return StoreLockedError(
            f"{holder}: DuckDB lets no other process open it, even read-only, until that one "
            "closes it; run this again once that process has finished, or read a lake of "
            "Delta tables, which a sync never locks (csload sync --parquet ROOT)",
            holder=holder, pid=pid)
    holder = f"database {path} is in use by another process{who}"
    return StoreLockedError(
        f"{holder}: {WRITER_SHUT_OUT}, wait for it with `csload sync --wait DURATION`, or give "
        "long-lived readers a lake of Delta tables (csload sync --parquet ROOT)",
        holder=holder, pid=pid)


# The database files a sync of this process has open (resolved paths). DuckDB shares one
# database between the connections of a process, so its file lock does not stop a second
# sync of the same file in the same process (a thread, an asyncio task, a notebook cell run
# again): the two met in the staging folder and in their transactions, with errors that
# named neither (found 2026-12-07).
_SYNCED_HERE: set[str] = set()
_SYNCED_HERE_LOCK = threading.Lock()


def claim_in_process(path: Path) -> str | None:
    """Mark `path` as synced by this process (the key to `release_in_process`); a
    StoreLockedError if a sync of this process has it already (`wait` applies to it as to
    another process). None for an in-memory database (never shared)."""
    if str(path) == ":memory:":
        return None
    key = str(path.resolve())
    with _SYNCED_HERE_LOCK:
        if key in _SYNCED_HERE:
            holder = f"database {path} is being synced by this process already (PID " \
                     f"{os.getpid()})"
            raise StoreLockedError(
                f"{holder}: one sync of a database at a time; let that one finish (or give "
                "this one wait=...), then sync again", holder=holder, pid=os.getpid())
        _SYNCED_HERE.add(key)
    return key


def release_in_process(key: str | None) -> None:
    if key is not None:
        with _SYNCED_HERE_LOCK:
            _SYNCED_HERE.discard(key)


def same_process_error(path: Path, *, read_only: bool) -> StoreLockedError:
    """DuckDB's "Can't open a connection to same database file with a different
    configuration": this process has the file open the other way (read-only or not)."""
    holder = (f"database {path} is already open in this process (PID {os.getpid()}), "
              f"{'for writing' if read_only else 'read-only'}")
    return StoreLockedError(
        f"{holder}: DuckDB opens a database file one way at a time in a process; close that "
        "connection first (con.close(), or open it as `with csload.connect(...) as con:`), "
        "or let the sync that has it finish", holder=holder, pid=os.getpid())


def open_error(path: Path, exc: duckdb.Error, *, read_only: bool = False) -> StoreError:
    """Why DuckDB could not open the database at `path`, for people."""
    message = str(exc)
    if "Could not set lock" in message:
        # Any DuckDB process may hold it (a notebook, the duckdb CLI, a BI tool), not only a
        # sync: the error names the holder from DuckDB's own text.
        return duckdb_locked_error(path, message, read_only=read_only)
    if "different configuration than existing connections" in message:
        return same_process_error(path, read_only=read_only)
    if "not a valid DuckDB database file" in message and _empty_file(path):
        # A first sync killed while DuckDB created the file leaves 0 bytes, and every command
        # then failed with DuckDB's own words (QA, 2026-12-07). Not deleted here: another
        # process may be creating it this very moment.
        return StoreError(f"{path} is an empty file (0 bytes), not a DuckDB database: a sync "
                          "stopped while DuckDB created it leaves one. It holds nothing: delete "
                          "it and run the command again")
    return StoreError(f"cannot open database {path}: {message}")


def _empty_file(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


# The settings a store changes (DuckDBStore.open, and the batches' memory cap).
_CHANGED_SETTINGS = ("preserve_insertion_order", "memory_limit", "write_buffer_row_group_count")


def settings_of(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {name: str(value) for name, value in con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE list_contains(?, name)",
        [list(_CHANGED_SETTINGS)]).fetchall()}


def restore_settings(con: duckdb.DuckDBPyConnection, kept: dict[str, str]) -> None:
    """Put back the settings the store changed, as they were when it opened. A connection of
    the user's own to the file, in the same process, shares them: after a sync in a notebook,
    the user's queries ran under the sync's 240 MB cap and failed out of memory (QA,
    2026-12-08). RESET first: a default comes back exactly; a limit of the user's own comes
    back as DuckDB shows it ("2.7 GiB" for 3 GB, not quite the same bytes)."""
    with suppress(duckdb.Error):
        for name in kept:
            con.execute(f"RESET {name}")
        defaults = settings_of(con)
        for name, value in kept.items():
            if defaults.get(name) != value:
                con.execute(f"SET {name} = {sql_str(value)}")
