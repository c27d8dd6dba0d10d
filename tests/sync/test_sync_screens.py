"""What `csload sync` shows (issue 19, point 6): in a real terminal, and piped into a log.

* The events behind the progress line: PLANNED says how many runs per table, and the writer
  says LOADING (table, runs, parts, bytes) before each batch it applies.
* In a terminal (tmux, 80 and 120 columns; downloads slowed by the simulator's bandwidth cap):
  the progress line shows its phase (downloading, loading TABLE), runs done of planned, the
  rate and an ETA, and leaves no trace: the final screen holds the summary and the jobs table,
  uncut.
* Piped (cron): one line per event, every line of stderr timestamped in the log format, the
  same as the log records of -v; no line per load twice, at any -v level; nothing cut; a
  reason a job's expired runs share (a first sync of months of history) said in full once.

A run whose part does not parse makes the piped runs show a failure too. tmux's `wait-for`
says when the command is done and `pipe-pane` keeps every byte the terminal was sent: no
sleeping, no timing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import csload
from csload.config import Settings
from csload.pipeline.report import EventKind, SyncEvent
from csload.simulator import SimConfig, Simulator
from tests.support.syncref import (
    LEGACY_JOB,
    SESSIONS_JOB,
    SIM_START,
    VIEWS_JOB,
    expired_runs,
    run_of,
)

# LOG_FORMAT (csload.cli.common): an ISO 8601 UTC time, the level, the logger, the message.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) "
                      r"[\w.]+: \S")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]")


def test_the_writer_says_which_table_it_loads_before_each_batch(
        settings: Settings, db_path: Path) -> None:
    events: list[SyncEvent] = []
    report = csload.sync(settings, db=db_path, on_event=events.append)
    loaded = {run.run_id: run for run in report.loaded}
    assert len(loaded) == 7 and report.failed == report.expired == []

    (planned,) = [e for e in events if e.kind is EventKind.PLANNED]
    per_table = Counter(run.table for run in loaded.values())
    assert planned.runs == 7
    assert planned.message == ", ".join(f"{t} {n}" for t, n in sorted(per_table.items()))
    assert events.index(planned) < min(i for i, e in enumerate(events)
                                       if e.kind is EventKind.PART_DOWNLOADED)

    # Each LOADING is followed by the outcomes of exactly its runs, in its table.
    batches: list[tuple[SyncEvent, list[SyncEvent]]] = []
    for event in events:
        if event.kind is EventKind.LOADING:
            batches.append((event, []))
        elif event.kind is EventKind.RUN_LOADED:
            assert batches, "a run loaded before any LOADING event"
            batches[-1][1].append(event)
    assert sum(len(runs) for _, runs in batches) == 7
    for loading, runs in batches:
        assert loading.runs == len(runs) > 0
        outcomes = [loaded[e.run_id] for e in runs if e.run_id is not None]
        assert {o.table for o in outcomes} == {loading.table}
        assert loading.parts == sum(o.parts for o in outcomes)
        assert loading.bytes == sum(o.bytes for o in outcomes)


# -- piped ----------------------------------------------------------------------------------


def corrupt_a_views_run(simulator: Simulator) -> int:
    bad = run_of(simulator, VIEWS_JOB, "2026-11-23")
    simulator.faults.corrupt_part = (bad, 1)
    return bad


def piped(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    wide = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "csload", *args], env=wide, text=True,
                          capture_output=True, timeout=300, check=False)


@pytest.mark.parametrize("verbose", [[], ["-v"], ["-vv"]])
def test_piped_every_line_is_one_timestamped_event(
        simulator: Simulator, child_env: dict[str, str], tmp_path: Path,
        verbose: list[str]) -> None:
    bad = corrupt_a_views_run(simulator)
    db = tmp_path / "cs.duckdb"
    done = piped([*verbose, "sync", "--db", str(db)], child_env)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.splitlines()
    assert lines and [line for line in lines if not LOG_LINE.match(line)] == []
    assert all("…" not in line for line in lines)

    runs = [run for job in (SESSIONS_JOB, VIEWS_JOB, LEGACY_JOB)
            for run in simulator.runs(job) if simulator.run_state(run.run_id) == "SUCCESS"]
    assert len(runs) == 7
    for run in runs:
        said = [line for line in lines
                if re.search(rf"\bloaded\b.*\brun {run.run_id}\b|\brun {run.run_id}\b.*"
                             r"\bloaded\b", line)]
        if run.run_id == bad:
            assert said == []
        else:
            # One line per load, whatever the -v level (csload.load said it a second time).
            assert len(said) == 1, said
            assert f"INFO csload.sync: loaded job {run.job_id}, run {run.run_id}: " in said[0]
    failed = [line for line in lines if f"run {bad}" in line and " WARNING " in line]
    assert len(failed) == 1, lines
    assert f"csload.sync: failed job {VIEWS_JOB}, run {bad}: part 1: line 2: " in failed[0]
    assert len([line for line in lines if "csload.sync: planned 7 new runs" in line]) == 1
    assert any("csload.sync: loading " in line and " into views: " in line for line in lines)
    if not verbose:
        assert not [line for line in lines if " csload.sync: " not in line], lines

    # The report on stdout: the tables whole, at the width they need.
    out = done.stdout.splitlines()
    assert "…" not in done.stdout
    assert any(f"│ {LEGACY_JOB} │ Legacy sessions (CSV) │" in line for line in out), done.stdout
    assert any(line.startswith("failed: job 1121 ") for line in out), done.stdout


@pytest.mark.parametrize("sim_config", [
    # 12 days: the first 5 days' runs of each daily job have expired (storage keeps 7 days).
    SimConfig(seed=11, days=12, sessions_per_day=4, start_time=SIM_START)])
def test_piped_expired_runs_of_a_job_say_their_shared_reason_once(
        simulator: Simulator, child_env: dict[str, str], tmp_path: Path) -> None:
    expired = expired_runs(simulator)
    jobs = {simulator.run(r).job_id for r in expired}
    assert len(expired) >= 10 and len(jobs) >= 2
    done = piped(["sync", "--db", str(tmp_path / "cs.duckdb")], child_env)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.splitlines()
    assert lines and [line for line in lines if not LOG_LINE.match(line)] == []

    said = {r: [line for line in lines if " WARNING csload.sync: expired job " in line
                and re.search(rf"\brun {r}:", line)] for r in expired}
    assert {r: len(found) for r, found in said.items()} == dict.fromkeys(expired, 1)
    for job in jobs:
        runs = [r for r in expired if simulator.run(r).job_id == job]
        first = min(runs, key=lambda r: lines.index(said[r][0]))
        # In full, once: the reason and the way out.
        assert "files have expired" in said[first][0] and "backfill --gaps" in said[first][0]
        for run in runs:
            if run != first:
                assert re.search(rf"expired job {job}, run {run}: the same reason as run "
                                 rf"{first} \[\d+/\d+ runs\]$", said[run][0]), said[run][0]
    assert sum("files have expired" in line for line in lines) == len(jobs)
    # The report on stdout still says, per job, what expired and what to do.
    report = [line for line in done.stdout.splitlines() if line.startswith("expired: job ")]
    assert len(report) == len(jobs)
    # The way out once per line, not the run's message's and the report's own after it.
    assert all(line.count("backfill --gaps") == 1 for line in report), report


def test_piped_backfill_lines_are_timestamped_and_said_once(
        simulator: Simulator, child_env: dict[str, str], tmp_path: Path) -> None:
    simulator.config.once_state_seconds = 0.0   # the once job's run is done at once
    done = piped(["-v", "backfill", "--like", str(VIEWS_JOB), "--from", "2026-11-20", "--to",
                  "2026-11-21", "--poll-interval", "0", "--db", str(tmp_path / "cs.duckdb")],
                 child_env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and [line for line in lines if not LOG_LINE.match(line)] == []
    loaded = [line for line in lines if re.search(r"\bloaded [\d,]+ rows", line)]
    assert len(loaded) == 1 and " INFO csload.backfill: views 2026-11-20..2026-11-21 " \
        in loaded[0], lines


# -- in a real terminal ---------------------------------------------------------------------


def tmux_run(command: list[str], width: int, tmp_path: Path, env: dict[str, str]
             ) -> tuple[str, str]:
    """Run `command` in a tmux pane `width` columns wide; return the final screen and every
    character the terminal was sent (escape sequences removed). The pane starts on `cat`,
    its output is piped to a file, then the command replaces it: no output is missed."""
    socket = f"csload-screens-{tmp_path.name}-{width}"
    script = tmp_path / f"run-{width}.sh"
    sent = tmp_path / f"sent-{width}.txt"
    quoted = " ".join(f"'{part}'" for part in command)
    script.write_text(f"{quoted}\ntmux -L {socket} wait-for -S done\nexec cat\n")
    base = ["tmux", "-L", socket]
    subprocess.run([*base, "-f", "/dev/null", "new-session", "-d", "-x", str(width),
                    "-y", "60", "-e", f"PATH={env['PATH']}", "cat"],
                   check=True, env=env, timeout=30)
    try:
        subprocess.run([*base, "pipe-pane", "-o", f"cat >> '{sent}'"], check=True, env=env,
                       timeout=30)
        subprocess.run([*base, "respawn-pane", "-k", f"sh '{script}'"], check=True, env=env,
                       timeout=30)
        subprocess.run([*base, "wait-for", "done"], check=True, env=env, timeout=120)
        shown = subprocess.run([*base, "capture-pane", "-p"], check=True, env=env,
                               capture_output=True, text=True, timeout=30)
    finally:
        subprocess.run([*base, "kill-server"], env=env, timeout=30, check=False)
    return shown.stdout, ANSI.sub("", sent.read_text(encoding="utf-8", errors="replace"))


@pytest.mark.parametrize("width", [80, 120])
def test_sync_in_a_real_terminal(simulator: Simulator, child_env: dict[str, str],
                                 tmp_path: Path, width: int) -> None:
    # Slow enough that the progress line is drawn many times while parts download.
    simulator.faults.bandwidth = 40_000
    env = {k: v for k, v in child_env.items() if k not in ("COLUMNS", "LINES", "TMUX")}
    env.setdefault("TERM", "xterm-256color")
    db = tmp_path / "cs.duckdb"
    screen, sent = tmux_run([sys.executable, "-m", "csload", "sync", "--db", str(db)], width,
                            tmp_path, env)

    # While it ran: every phase, with runs done of planned, the rate and the ETA. (A new
    # phase is drawn as it starts, so these do not depend on timing.)
    states = [s.strip() for s in re.split(r"[\r\n]+", sent) if s.strip()]
    progress = [s for s in states if "runs " in s and "ETA " in s]
    assert any(s.startswith("discovering runs") for s in [s.lstrip("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏━╺╸ ")
                                                          for s in states]), states
    for phase in ("downloading  runs 0/7", "loading sessions (", "loading views (",
                  "finishing  runs 7/7"):
        assert any(phase in s for s in progress), (phase, progress)
    assert any(re.search(r"ETA \d+:\d\d:\d\d", s) for s in progress)
    assert any(re.search(r"[\d.]+ [KM]?B/s", s) for s in progress)
    # One line of the terminal, even at 80 columns (parts, rows and the clock left out).
    assert all(len(s) <= width for s in progress), progress
    assert "…" not in sent

    # At the end: the summary and the jobs table, whole; no progress line left behind.
    lines = screen.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in screen
    assert not [line for line in lines if re.search(r"ETA |discovering|downloading|finishing|"
                                                    r"loading \w+ \(", line)], screen
    # The title (the database's path) may fold over two lines at 80 columns, not be cut.
    title = next(i for i, line in enumerate(lines) if line.startswith("sync of "))
    assert str(db) in "".join(lines[title:title + 3]), screen
    assert any(line.startswith("┏") for line in lines[title + 1:title + 3]) and "jobs" in lines
    ends = [i for i, line in enumerate(lines) if line.startswith("└")]
    assert len(ends) == 2, screen      # both tables closed: nothing cut off at the bottom
    for job in (SESSIONS_JOB, VIEWS_JOB, LEGACY_JOB):
        assert any(line.startswith(f"│ {job} │") for line in lines), screen
    for table in ("sessions", "views"):
        assert any(line.startswith(f"│ {table} ") and "│ loaded " in line
                   for line in lines), screen
    if width == 120:
        assert any("│ Legacy sessions (CSV) │ sessions_job_1119 │" in line
                   for line in lines), screen
    con = csload.connect(db, read_only=True)
    try:
        row = con.execute("SELECT count(DISTINCT _run_id) FROM views").fetchone()
        assert row == (3,)
    finally:
        con.close()
