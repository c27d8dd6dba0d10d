"""What the host's resource limits (`ulimit`) let csload do: checked before the work starts,
and named when one stops it anyway.

Found by QA on 2026-12-08, under limits a cron box or a hardened container sets:
- `ulimit -v` (address space): DuckDB and the lake's Rust libraries reserve far more address
  space than they touch (peak RSS stays under 500 MB). A DuckDB target synced at 1.8 GB and
  failed its runs one by one at 1.7 GB, blaming their size; a lake synced at 4 GB, failed its
  runs at 3 GB, and at 1.5-2.5 GB syncs and `status` hung for good, deaf to SIGTERM, or
  aborted in Rust. So below `MIN_ADDRESS_SPACE` a command stops at once and says why.
- `ulimit -n` (open files): too few for the downloads failed every run at every sync ("Too
  many open files", exit 3). The soft limit is raised toward the hard one when the downloads
  may need more (what the Go runtime does for every program); below the least they need, the
  sync stops at once.
"""

from __future__ import annotations

import errno

from csload.errors import ConfigError

try:   # POSIX only
    import resource
except ImportError:   # pragma: no cover - not on the platforms csload runs on
    resource = None   # type: ignore[assignment]

# The least address space a command works with (see the docstring), with some room above what
# QA measured: reading a lake (status, connect) worked at 3 GB and aborted at 2 GB.
MIN_ADDRESS_SPACE = {"database": 2 << 30, "lake": 4 << 30, "lake read": 3 << 30}
# Open files beside the downloads' (DuckDB's files, the lake's, sockets to the API, logs),
# and per download in flight (its socket and staging file): 4 downloads needed 28, 64 about
# 150 (QA, 2026-12-08). The soft limit is raised to the comfortable count when it can be;
# below the least one, a sync stops at once (between the two it goes on, as it did).
BASE_OPEN_FILES = 40
LEAST_OPEN_FILES = 20
OPEN_FILES_PER_DOWNLOAD = 2


def check_address_space(kind: str) -> None:
    """ConfigError when `ulimit -v` leaves less address space than `kind` needs: "database"
    (any use), "lake read" (status, connect, a dry run) or "lake" (a sync writing it)."""
    if resource is None:
        return
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    need = MIN_ADDRESS_SPACE[kind]
    if soft != resource.RLIM_INFINITY and soft < need:
        raise ConfigError(
            f"this process may use {soft >> 20} MB of address space (ulimit -v {soft >> 10}), "
            f"and csload needs {need >> 30} GB {'to read' if kind == 'lake read' else 'for'} "
            f"a {kind.split()[0]}: DuckDB{' and the lake libraries' if 'lake' in kind else ''} "
            "reserve address space they do not use (the memory used stays far lower). Raise "
            "or lift `ulimit -v` (memory is better capped by a cgroup, which counts what is "
            "used)")


def fit_open_files(downloads: int) -> None:
    """Raise the soft limit on open files toward the hard one when `downloads` in flight may
    need more; ConfigError when fewer than the least they need are left."""
    if resource is None:
        return
    want = BASE_OPEN_FILES + OPEN_FILES_PER_DOWNLOAD * downloads
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    raised = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if raised > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    least = LEAST_OPEN_FILES + OPEN_FILES_PER_DOWNLOAD * downloads
    if soft < least:
        fewer = " or lower the downloads in flight (--concurrency)" if downloads > 1 else ""
        raise ConfigError(
            f"{downloads} download{'s at once need' if downloads > 1 else ' at once needs'} "
            f"at least {least} "
            f"open files, and this process may open {soft} (ulimit -n): raise `ulimit -n`"
            f"{fewer}")


def limit_hit(exc: BaseException) -> str | None:
    """What to say, in one line, when a host limit stopped the command after all (None: `exc`
    is no such error)."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return ("too many open files: raise `ulimit -n`, or lower the downloads in flight "
                "(--concurrency)")
    if isinstance(exc, MemoryError) or "Cannot allocate memory" in text \
            or "memory allocation of" in text:
        return ("out of memory: this process's address space or memory is limited (`ulimit "
                "-v`, a container's limit); raise the limit")
    if "can't start new thread" in text or "can't spawn worker thread" in text \
            or "Resource temporarily unavailable" in text:
        return ("the host refused a new thread: its limit on processes and threads is too low "
                "(`ulimit -u`, a container's pids limit); raise it")
    return None
