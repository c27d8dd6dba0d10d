"""Interleaved A/B of csload's start-up mechanisms on the no-op sync (nothing new to load).

    python benchmarks/noop_ab.py none,no-gc-freeze,no-open-overlap 20

Serves `csload simulate` on a free port, syncs it once into a fresh database, then runs the
no-op `csload sync` ROUNDS times per arm, the arms interleaved (A B C A B C ...), each through
benchmarks/csload_ab.py with CSLOAD_BENCH_AB=<arm> (benchmarks/ab_patches.py), timed spawn to
exit. Prints each arm's median and minimum against the first arm's median. A mechanism worth
20-60 ms is below the noise of a 1 M-row sync but 5-12 % of a no-op sync (~0.5 s).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def simulator_env(sim: subprocess.Popen[str]) -> dict[str, str]:
    """This environment plus the CONTENTSQUARE_* settings `csload simulate` prints."""
    env, seen = dict(os.environ), ""
    deadline = time.monotonic() + 30
    assert sim.stdout is not None
    while time.monotonic() < deadline and not (
            "CONTENTSQUARE_CLIENT_SECRET" in seen and "CONTENTSQUARE_AUTH_URL" in seen):
        seen += sim.stdout.readline()
    for line in seen.splitlines():
        line = line.strip().removeprefix("export ")
        if line.startswith("CONTENTSQUARE_") and "=" in line:
            name, value = line.split("=", 1)
            env[name] = value.strip("'\"")
    return env


def main(arms: list[str], rounds: int) -> None:
    sim = subprocess.Popen([PYTHON, "-m", "csload", "simulate", "--port", str(free_port()),
                            "--days", "3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        env = simulator_env(sim)
        with tempfile.TemporaryDirectory() as folder:
            db = str(Path(folder) / "noop.duckdb")
            first = subprocess.run([PYTHON, "-m", "csload", "sync", "--db", db, "--json"],
                                   env=env, capture_output=True, text=True)
            assert first.returncode == 0, first.stderr[-500:]
            times: dict[str, list[float]] = {arm: [] for arm in arms}
            for _ in range(rounds):
                for arm in arms:
                    start = time.perf_counter()
                    done = subprocess.run(
                        [PYTHON, str(HERE / "csload_ab.py"), "sync", "--db", db, "--json"],
                        env=dict(env, CSLOAD_BENCH_AB=arm), capture_output=True, text=True,
                        cwd=HERE)
                    times[arm].append(time.perf_counter() - start)
                    assert done.returncode == 0, (arm, done.stderr[-500:])
                    assert json.loads(done.stdout)["runsLoaded"] == 0
    finally:
        sim.terminate()
    base = statistics.median(times[arms[0]])
    for arm in arms:
        median = statistics.median(times[arm])
        print(f"{arm:28s} median {median * 1000:7.1f} ms  min {min(times[arm]) * 1000:7.1f} ms"
              f"  vs {arms[0]}: {100 * (median - base) / base:+5.1f}%  (n={len(times[arm])})")


if __name__ == "__main__":
    main(sys.argv[1].split(","), int(sys.argv[2]) if len(sys.argv) > 2 else 20)
