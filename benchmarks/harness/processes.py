"""Timing a child process from spawn to exit, the machine's load, the `csload` command the
benches run, and their printing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ab_patches

BENCH_DIR = Path(__file__).resolve().parent.parent
RESULTS = BENCH_DIR / "results"
# The script that serves the simulator (`--serve`) and runs the patched CLI (`--patched-cli`).
BENCH_SYNC = BENCH_DIR / "bench_sync.py"

_SCRIPT = Path(sys.executable).parent / "csload"
# The installed `csload` command beside this interpreter, as a user runs it; with
# CSLOAD_BENCH_AB set, the A/B launcher for both arms (benchmarks/ab_patches.py).
CSLOAD = [str(_SCRIPT)] if _SCRIPT.exists() else [
    sys.executable, "-c", "from csload.cli import main; main(prog_name='csload')"]
if os.environ.get(ab_patches.ENV) is not None:
    CSLOAD = [sys.executable, str(BENCH_DIR / "csload_ab.py")]


@dataclass
class Child:
    seconds: float
    rss_mb: float
    cpu_seconds: float
    returncode: int
    stdout: str
    stderr: str


def run_child(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> Child:
    """Run `cmd` to completion: wall clock from spawn to reap, its CPU time and peak RSS."""
    os.sync()  # the previous step's dirty pages are not written back during this one
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
                     proc.returncode,
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_pressure() -> float | None:
    """Share of the last 60 s in which some runnable task waited for a CPU (Linux PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split("=") for item in line.split()[1:])
    return float(fields["avg60"])


def compile_csload() -> None:
    """Byte-compile csload's modules, as `pip install` does for a wheel. Run from a source
    checkout with PYTHONDONTWRITEBYTECODE set (as on the development machine), every csload
    start would compile them again (~40 ms), which no installed csload pays."""
    import compileall

    import csload

    compileall.compile_dir(str(Path(csload.__file__).parent), quiet=1)


def git_state() -> dict[str, Any]:
    """The commit measured, and which files differed from it (the library may be mid-change)."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=BENCH_DIR.parent, capture_output=True,
                                  text=True, check=False).stdout.rstrip("\n")
        except OSError:
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "modified": git("status", "--short", "--untracked-files=no").splitlines()}


def log(text: str) -> None:
    print(text, flush=True)


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def fmt_list(values: list[float], digits: int = 2) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"
