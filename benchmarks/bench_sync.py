"""End to end: `csload sync` from the local simulator vs DuckDB's own load of the same files.

    python benchmarks/bench_sync.py                      # 1 M and 2 M pageviews (~10 min)
    python benchmarks/bench_sync.py --quick              # ~100 k pageviews (< 1 min)
    python benchmarks/bench_sync.py --sizes 2000000 --repeat 5 --phases

For each size, a simulator runs in a separate process (`--serve`): it generates the daily runs
of a `views` job (CSV, gzip parts) and a `sessions` job (JSONL, gzip parts), writes the exact
gzip bytes it will serve (`sim.part_bodies(..., compressed=True)`) to a local folder, then
serves them. Generation is outside every timed section. Then, timed:

1. `csload sync --json` into a fresh database file, in a subprocess: wall clock from spawn to
   exit (Python start-up included), the child's CPU seconds and peak RSS (`wait4` rusage), and
   the simulator's CPU seconds meanwhile (it shares the machine's cores).
2. The baseline, DuckDB's own load, timed as its own process exactly as the sync is (wall clock
   from spawn to exit, CPU seconds and peak RSS from `wait4`): `python benchmarks/duckdb_load.py`
   starts the interpreter, imports duckdb, runs `CREATE TABLE views AS SELECT ... FROM
   read_csv([every part], columns = {...})` and the same for `sessions` with `read_json`, over
   the very same gzip files on local disk, with the same DuckDB settings, closes (the final
   checkpoint) and exits. Its SQL reuses csload's reader options, column types and cast
   expressions (`csload.load.sql`, `job_layout`), so both do the same parsing work; it is
   written beforehand, untimed, by a `--baseline-plan` process, so the timed one imports no
   csload. It writes no lineage columns, no ledger and runs no supersede check. (Before
   2026-12-06 the baseline was timed from `duckdb.connect` to `close()` only, Python start-up
   excluded while csload's counted: result files without `baseline_timing` hold that figure.)
   The two alternate (which goes first, too), `--repeat` times each, into fresh files; the
   best of each is compared. Row counts of both databases must match.
3. Three more `csload sync` with nothing new (the no-op), on the last database.
4. The server re-runs one day of both jobs (`sim.rerun`, a new data revision; generated
   before timing) and one more `csload sync` replaces that day (the re-sync); the row counts
   must equal old - replaced + new, with no duplicate row keys.

Results: a table on stdout and `benchmarks/results/bench_sync-<date>[-patched].json`. The "CPU
ratio" (csload process CPU / baseline process CPU) is the figure to trust when other work
loads the machine: wall clocks on a shared 2-core box move by +-50%; the load average and the
CPU pressure (PSI) before and after each size are printed and saved.

`--patch NAME[=VALUE]` (repeatable) runs the csload syncs with an experimental change
monkeypatched in (PATCHES, PATCHES_WITH_VALUE; SQL_PATCHES apply to the baseline too); the
default run always measures the code as it is. `--phases` adds one more sync per size,
instrumented in-process, that reports each stage's wall time and its thread's CPU time.
`CSLOAD_BENCH_AB=NAME[,NAME]` (or `none`, for the A arm) turns off one of the speed
mechanisms issue 17 asks to justify, in every csload sync, with both arms started by the same
launcher (benchmarks/ab_patches.py); results files get `-ab-<names>`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results"
sys.path.insert(0, str(HERE.parent))
import ab_patches  # noqa: E402

_SCRIPT = Path(sys.executable).parent / "csload"
# The installed `csload` command beside this interpreter, as a user runs it; with
# CSLOAD_BENCH_AB set, the A/B launcher for both arms (benchmarks/ab_patches.py).
CSLOAD = [str(_SCRIPT)] if _SCRIPT.exists() else [
    sys.executable, "-c", "from csload.cli import main; main(prog_name='csload')"]
if os.environ.get(ab_patches.ENV) is not None:
    CSLOAD = [sys.executable, str(HERE.parent / "csload_ab.py")]

# Pageviews per simulated session inside one day's window (measured on the generator: ~4.5).
VIEWS_PER_SESSION = 4.5
SEED = 11
# A fixed simulated "now": the same days, hence the same rows, in every invocation.
SIM_NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TARGET_RATIO = 1.25
TARGET_RSS_MB = 500
TARGET_NOOP_S = 2.0
# How `duckdb_seconds` is measured: result files without this key timed connect..close only.
BASELINE_TIMING = ("process: spawn to exit of `python benchmarks/duckdb_load.py` (start-up, "
                   "import duckdb, the statements, close and its checkpoint, exit), as csload's")


# --- measuring a child process -------------------------------------------------------------


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


# --- the simulator process (--serve) -------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Generate, write the served bytes to disk, serve; obey `rerun` / `stop` on stdin."""
    from csload.simulator import SimConfig, Simulator
    from csload.simulator.config import dialect_variants

    out_dir = Path(args.out)
    sessions_per_day = max(1, round(args.views / args.days / VIEWS_PER_SESSION))
    started = time.perf_counter()
    sim = Simulator(SimConfig(seed=SEED, days=args.days, sessions_per_day=sessions_per_day,
                              part_max_bytes=args.part_mb * 1024 * 1024,
                              seed_suspended_job=False, start_time=SIM_NOW,
                              variants=dialect_variants(args.dialect)))
    sim.prepare()
    written: set[int] = set()

    def write_parts() -> list[dict[str, Any]]:
        """Every served part not yet on disk, by run: the very bytes storage sends."""
        runs = []
        for job in sim.jobs:
            for run in sim.runs(job.job_id):
                if run.run_id in written:
                    continue
                bodies = sim.part_bodies(job.job_id, run.run_id, compressed=True)
                if not bodies:
                    continue
                files = []
                for number, body in enumerate(bodies, start=1):
                    path = out_dir / f"job-{job.job_id}-run-{run.run_id}-part-{number:03d}." \
                        f"{job.format.lower()}.gz"
                    path.write_bytes(body)
                    files.append(str(path))
                written.add(run.run_id)
                runs.append({"job_id": job.job_id, "scope": job.scope, "format": job.format,
                             "run_id": run.run_id, "day": run.start.date().isoformat(),
                             "files": files, "bytes": sum(len(b) for b in bodies)})
        return runs

    runs = write_parts()
    generated = time.perf_counter() - started
    handle = sim.start_in_thread()
    client_id, client_secret, project_id = sim.credentials
    say({"url": handle.base_url, "client_id": client_id, "client_secret": client_secret,
         "project_id": project_id, "sessions_per_day": sessions_per_day,
         "generate_seconds": round(generated, 1), "runs": runs})
    try:
        for line in sys.stdin:
            command = line.split()
            if not command:
                continue
            if command[0] == "rerun":
                started = time.perf_counter()
                day = datetime.fromisoformat(command[1]).date()
                run_ids = [sim.rerun(job.job_id, day) for job in sim.jobs]
                sim.prepare()
                runs = write_parts()
                say({"rerun": run_ids, "runs": runs,
                     "generate_seconds": round(time.perf_counter() - started, 1)})
            elif command[0] == "stop":
                break
    finally:
        handle.stop()
    # Freeing millions of cached row objects takes the interpreter tens of seconds.
    sys.stdout.flush()
    os._exit(0)


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Server:
    """The `--serve` child, driven by lines on its stdin, answering JSON lines on its stdout."""

    def __init__(self, views: int, days: int, part_mb: int, folder: Path,
                 dialect: str = "contract") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--serve", "--views", str(views), "--days", str(days),
             "--part-mb", str(part_mb), "--out", str(folder), "--dialect", dialect],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process ended (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def rerun(self, day: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"rerun {day}\n")
        self.proc.stdin.flush()
        return self._answer()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTSQUARE_")}
        env.update({
            "CONTENTSQUARE_CLIENT_ID": self.hello["client_id"],
            "CONTENTSQUARE_CLIENT_SECRET": self.hello["client_secret"],
            "CONTENTSQUARE_PROJECT_ID": str(self.hello["project_id"]),
            "CONTENTSQUARE_AUTH_URL": self.hello["url"],
        })
        return env


# --- the baseline process (--baseline) -----------------------------------------------------


@dataclass
class BaselineSelect:
    """How the baseline reads one job's files: csload's own reader, columns and casts."""

    scope: str
    values: str        # the SELECT list: every column typed and named as csload loads it
    source: str        # the FROM clause: read_csv/read_json over the job's parts, as `f`
    layout: Any        # csload.load.columns.JobLayout
    columns: tuple[Any, ...]


def baseline_selects(args: argparse.Namespace) -> list[BaselineSelect]:
    """Untimed preparation of a baseline: SQL patches applied, the jobs' layouts, and each
    CSV job's header (csload reads it too), for the files of `--manifest`."""
    import anyio

    from csload.api.client import ExportClient
    from csload.config import Settings
    from csload.load import sql
    from csload.load.columns import job_layout
    from csload.load.parts import inspect_part
    from csload.load.sqltext import quote_ident

    for spec in args.patch or ():
        if spec in SQL_PATCHES:
            apply_patch(spec)
    manifest = json.loads(Path(args.manifest).read_text())

    async def list_jobs() -> list[Any]:
        settings = Settings(client_id=manifest["client_id"],
                            client_secret=manifest["client_secret"],
                            project_id=manifest["project_id"], auth_url=manifest["url"])
        async with ExportClient(settings) as client:
            return list(await client.list_jobs())

    selects = []
    for job in anyio.run(list_jobs):
        files = [f for run in manifest["runs"] if run["job_id"] == job.job_id
                 for f in run["files"]]
        if not files:
            continue
        layout = job_layout(job)
        csv = job.format == "CSV"
        columns = layout.columns
        first = inspect_part(job.job_id, 0, 1, Path(files[0]), job.format,
                             tuple(c.source for c in columns))
        if csv and first.has_header:
            assert first.header is not None
            by_source = layout.by_source()
            columns = tuple(by_source[name] for name in first.header)
        reader = (sql.read_csv(files, columns, gzip=True, header=first.has_header) if csv
                  else sql.read_json(files, columns, gzip=True, file_column=False))
        values = ", ".join(f"{sql.select_value(c, csv)} AS {quote_ident(c.name)}"
                           for c in columns)
        selects.append(BaselineSelect(job.scope, values, f"{reader} AS f", layout, columns))
    return selects


def baseline_setup(args: argparse.Namespace) -> list[str]:
    """DuckDBStore.open's settings (insertion order off, csload's macros; a memory cap only
    with --baseline-memory-limit), run by the baseline before its statements."""
    from csload.load import sql

    setup = ["SET preserve_insertion_order = false"]
    if args.baseline_memory_limit:
        setup.append(f"SET memory_limit = '{args.baseline_memory_limit}'")
    return [*setup, *sql.MACROS]


def write_plan(args: argparse.Namespace, statements: list[tuple[str, str]]) -> None:
    """The baseline's SQL, in the file `--out`, for duckdb_load.py (which imports no csload)."""
    plan = {"setup": baseline_setup(args), "statements": statements}
    Path(args.out).write_text(json.dumps(plan, indent=1) + "\n")


def baseline_plan(args: argparse.Namespace) -> None:
    """(--baseline-plan) DuckDB's own load of the files of `--manifest` into typed tables:
    one CREATE TABLE AS per job, written to the plan file `--out`."""
    from csload.load.sqltext import quote_ident

    write_plan(args, [(sel.scope, f"CREATE TABLE {quote_ident(sel.scope)} AS "
                                  f"SELECT {sel.values} FROM {sel.source}")
                      for sel in baseline_selects(args)])


# The baseline as its own process (timed by run_child, as `csload sync` is).
LOADER = HERE.parent / "duckdb_load.py"


def prepare_baseline(manifest: Path, plan: Path, args: argparse.Namespace,
                     script: Path = HERE) -> Path:
    """Write the baseline's plan (`script --baseline-plan`), untimed. In a process of its own:
    SQL patches change csload's cached schemas in the process that applies them."""
    cmd = [sys.executable, str(script), "--baseline-plan", "--manifest", str(manifest),
           "--out", str(plan)]
    if args.baseline_memory_limit:
        cmd += ["--baseline-memory-limit", args.baseline_memory_limit]
    cmd += [x for spec in args.patch if spec in SQL_PATCHES for x in ("--patch", spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"preparing the baseline's SQL failed:\n{done.stderr[-3000:]}")
    return plan


def baseline_cmd(plan: Path, database: str) -> list[str]:
    """DuckDB's own load: interpreter start, `import duckdb`, the plan, close, exit."""
    return [sys.executable, str(LOADER), str(plan), database]


# --- instrumented sync (--phases) and experimental patches (--patch) -----------------------


def _patch_memory_limit(limit: str) -> None:
    """`SET memory_limit` on the store's connection (DuckDB's default: 80% of RAM)."""
    _patch_duckdb_set(f"memory_limit:{limit}")


def _patch_duckdb_set(spec: str) -> None:
    """`SET name = 'value'` on the store's connection, after its own settings (NAME:VALUE)."""
    from csload.load.duckdb import DuckDBStore

    name, _, value = spec.partition(":")
    original = DuckDBStore.__init__

    def init(self: Any, con: Any, path: Path, *args: Any, **kwargs: Any) -> None:
        con.execute(f"SET {name} = '{value}'")
        original(self, con, path, *args, **kwargs)

    DuckDBStore.__init__ = init  # type: ignore[method-assign]


def _patch_max_staged_runs(value: str) -> None:
    """A different default for `Limits.max_staged_runs` (16; the writer's batches hold at most
    that less `download_concurrency`)."""
    from csload.config import Limits

    defaults = Limits.__init__.__kwdefaults__
    assert defaults is not None and "max_staged_runs" in defaults
    defaults["max_staged_runs"] = int(value)


def _patch_narrow_integers() -> None:
    """Integers at the catalog's guessed widths (UTINYINT, USMALLINT, UINTEGER, TINYINT, ...),
    as csload loaded them before every narrower integer became BIGINT: what the wider types
    cost (docs/formats.md)."""
    import dataclasses

    from csload.api import schemas

    # Read (and cache) the schemas first: their files are checked against the mapping.
    cached = [schemas.load_schema(scope) for scope in schemas.SCOPES]
    schemas.SCALAR_TYPES.update({"UInt8": "UTINYINT", "UInt16": "USMALLINT",
                                 "UInt32": "UINTEGER", "Int8": "TINYINT", "Int16": "SMALLINT",
                                 "Int32": "INTEGER"})
    for schema in cached:   # every later load_schema() returns these objects
        narrow = tuple(dataclasses.replace(f, duckdb_type=schemas.duckdb_type_of(f.source_type))
                       for f in schema.fields)
        object.__setattr__(schema, "fields", narrow)


# (no-gzip-verify, measured here, is now csload's own behaviour.)
PATCHES: dict[str, Callable[[], None]] = {"narrow-integers": _patch_narrow_integers}
# Patches that change the SQL: the baseline applies them too (same expressions on both sides).
# (The array decoding fast path, the batch filling and the faster gzip check, measured here as
# patches, are now in csload itself.)
SQL_PATCHES: tuple[str, ...] = ("narrow-integers",)
# Patches with an argument: NAME=VALUE.
PATCHES_WITH_VALUE: dict[str, Callable[[str], None]] = {
    "memory-limit": _patch_memory_limit,
    "max-staged-runs": _patch_max_staged_runs,
    "duckdb-set": _patch_duckdb_set,
}


def apply_patch(spec: str) -> None:
    name, _, value = spec.partition("=")
    if name in PATCHES_WITH_VALUE and value:
        PATCHES_WITH_VALUE[name](value)
    elif name in PATCHES and not value:
        PATCHES[name]()
    else:
        raise SystemExit(f"unknown patch {spec!r}: one of {sorted(PATCHES)} or "
                         f"{[n + '=VALUE' for n in PATCHES_WITH_VALUE]}")


@dataclass
class Span:
    name: str
    start: float
    end: float
    cpu: float | None   # CPU time of the calling thread (sync spans only)


@dataclass
class Recorder:
    t0: float = field(default_factory=time.perf_counter)
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def span(self, name: str, cpu: bool = True) -> Iterator[None]:
        start, cpu_start = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            used = time.thread_time() - cpu_start if cpu else None
            with self.lock:
                self.spans.append(Span(name, start - self.t0, time.perf_counter() - self.t0,
                                       used))

    def wrap(self, owner: Any, attr: str, label: str, static: bool = False) -> None:
        """Time every call of `owner.attr` (a function) as a span named `label`."""
        original = getattr(owner, attr, None)
        if original is None:   # the library changed: measure what is still there
            log(f"   (no {getattr(owner, '__name__', owner)}.{attr} to time)")
            return

        def wrapper(*a: Any, **k: Any) -> Any:
            with self.span(label):
                return original(*a, **k)

        setattr(owner, attr, staticmethod(wrapper) if static else wrapper)

    def wrap_async(self, owner: Any, attr: str, label: str) -> None:
        """Time every call of the coroutine function `owner.attr` (wall time only)."""
        original = getattr(owner, attr, None)
        if original is None:   # the library changed: measure what is still there
            log(f"   (no {getattr(owner, '__name__', owner)}.{attr} to time)")
            return

        async def wrapper(*a: Any, **k: Any) -> Any:
            with self.span(label, cpu=False):
                return await original(*a, **k)

        setattr(owner, attr, wrapper)

    def phases(self) -> dict[str, dict[str, Any]]:
        """Per span name: count, summed wall time, summed CPU, first start, last end."""
        phases: dict[str, dict[str, Any]] = {}
        for s in self.spans:
            p = phases.setdefault(s.name, {"count": 0, "sum": 0.0, "cpu": None,
                                           "first_start": s.start, "last_end": s.end})
            p["count"] += 1
            p["sum"] += s.end - s.start
            if s.cpu is not None:
                p["cpu"] = (p["cpu"] or 0.0) + s.cpu
            p["first_start"] = min(p["first_start"], s.start)
            p["last_end"] = max(p["last_end"], s.end)
        for p in phases.values():
            p["sum"] = round(p["sum"], 3)
            p["cpu"] = None if p["cpu"] is None else round(p["cpu"], 3)
        return phases


def run_instrumented(recorder: Recorder, **target: Any) -> dict[str, Any]:
    """One `csload.sync` into `target` (db= or parquet=) with the pipeline's common stages
    timed (wrap the target's own with `recorder.wrap` first): the JSON summary to print."""
    import resource

    import duckdb

    import csload.pipeline.sync
    import csload.transfer.stage
    from csload.config import load_settings
    from csload.transfer import gzipcheck, storage

    recorder.wrap_async(csload.transfer.stage, "stage_run", "stage_run (download a run)")
    recorder.wrap_async(csload.pipeline.sync, "plan_sync", "plan (jobs, runs, ledger)")
    recorder.wrap(csload.pipeline.sync, "_write", "writer: _write (batch)")
    recorder.wrap(gzipcheck.GzipVerifier, "feed", "gzip verify (feed)")
    recorder.wrap(storage._TempFile, "write", "staging file write+verify")

    batches: list[int] = []
    original_write = csload.pipeline.sync._write

    def count_batches(store: Any, batch: list[Any]) -> Any:
        batches.append(len(batch))
        return original_write(store, batch)

    csload.pipeline.sync._write = count_batches
    settings = load_settings()
    start = time.perf_counter()
    report = csload.pipeline.sync.sync(settings, **target)
    total = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": total, "rows": report.rows, "batches": batches,
            "rss_mb": usage.ru_maxrss / 1024, "duckdb": duckdb.__version__,
            "cpu_total": round(usage.ru_utime + usage.ru_stime, 3),
            "cpu_main_thread": round(time.thread_time(), 3), "phases": recorder.phases()}


def instrumented_sync(args: argparse.Namespace) -> None:
    """`csload sync` in this process with timers around its stages; prints a JSON summary."""
    recorder = Recorder()
    for spec in args.patch or ():
        apply_patch(spec)
    from csload.load import duckdb as store_module

    store = store_module.DuckDBStore
    recorder.wrap(store, "_insert_group", "  insert (read_csv/read_json)")
    recorder.wrap(store, "_apply_key_rule", "  key rule")
    recorder.wrap(store, "_apply_window_rule", "  window rule")
    recorder.wrap(store, "_run_counts", "  run counts")
    recorder.wrap(store, "_commit", "  commit")
    recorder.wrap(store, "close", "close (checkpoint)")
    recorder.wrap(store_module, "inspect_part", "  inspect part (header)")
    say(run_instrumented(recorder, db=args.db))


def patched_cli(args: argparse.Namespace) -> None:
    """The csload CLI with `--patch` changes (and CSLOAD_BENCH_AB's) applied (experiments)."""
    for spec in args.patch or ():
        apply_patch(spec)
    ab_patches.apply(os.environ.get(ab_patches.ENV))
    from csload.cli import main

    main(args=args.rest, prog_name="csload")


# --- one size --------------------------------------------------------------------------------


def sync_cmd(db: Path, patches: list[str]) -> list[str]:
    if patches:
        flags = [x for name in patches for x in ("--patch", name)]
        return [sys.executable, str(HERE), "--patched-cli", *flags, "--", "sync",
                "--db", str(db), "--json"]
    return [*CSLOAD, "sync", "--db", str(db), "--json"]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checked_sync(db: Path, server: Server, patches: list[str], cwd: Path) -> tuple[Child, dict]:
    """One `csload sync --json`; the report gets the simulator's CPU seconds meanwhile."""
    before = process_cpu(server.proc.pid)
    child = run_child(sync_cmd(db, patches), env=server.env(), cwd=cwd)
    if child.returncode != 0:
        raise RuntimeError(f"csload sync exited {child.returncode}:\n{child.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(child.stdout)
    report["_server_cpu_seconds"] = process_cpu(server.proc.pid) - before
    return child, report


def table_counts(db: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                for t in ("sessions", "views")}
    finally:
        con.close()


def duplicate_keys(db: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            "views": con.execute("SELECT count(*) - count(DISTINCT (session_id, view_number)) "
                                 "FROM views").fetchone()[0],
            "sessions": con.execute("SELECT count(*) - count(DISTINCT session_id) "
                                    "FROM sessions").fetchone()[0],
        }
    finally:
        con.close()


def file_rows(files: list[str], csv: bool, dialect: str = "contract") -> int:
    """Rows in the files (CSV parts have a header in the contract dialect, none in ClickHouse's)."""
    import duckdb

    header = "true" if dialect == "contract" else "false"
    reader = "read_csv" if csv else "read_json"
    opts = (f"header = {header}, all_varchar = true" if csv
            else "format = 'newline_delimited'")
    listing = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    con = duckdb.connect()
    try:
        return int(con.execute(f"SELECT count(*) FROM {reader}({listing}, {opts})").fetchone()[0])
    finally:
        con.close()


@dataclass
class SizeResult:
    target_views: int
    days: int
    views: int = 0
    sessions: int = 0
    gzip_mb: float = 0.0
    parts: int = 0
    generate_seconds: float = 0.0
    csload_seconds: list[float] = field(default_factory=list)
    csload_rss_mb: list[float] = field(default_factory=list)
    csload_cpu_seconds: list[float] = field(default_factory=list)
    server_cpu_seconds: list[float] = field(default_factory=list)
    # DuckDB's own load, its process from spawn to exit (compared with csload_seconds).
    duckdb_seconds: list[float] = field(default_factory=list)
    # The same figures: kept for readers of files before 2026-12-06, where `duckdb_seconds` was
    # connect..close and this the process, then including the untimed preparation.
    duckdb_wall_seconds: list[float] = field(default_factory=list)
    # connect..close inside the baseline process (start-up, import and exit excluded).
    duckdb_connect_to_close_seconds: list[float] = field(default_factory=list)
    duckdb_rss_mb: list[float] = field(default_factory=list)
    duckdb_cpu_seconds: list[float] = field(default_factory=list)
    duckdb_statements: list[dict[str, float]] = field(default_factory=list)
    # Size of each database file when its process ended (the data's footprint on disk).
    duckdb_file_mb: list[float] = field(default_factory=list)
    csload_file_mb: list[float] = field(default_factory=list)
    noop_seconds: list[float] = field(default_factory=list)
    noop_rss_mb: list[float] = field(default_factory=list)
    resync_seconds: float = 0.0
    resync_rss_mb: float = 0.0
    resync_rows: dict[str, int] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)
    cpu_pressure_before: float | None = None
    cpu_pressure_after: float | None = None
    phases: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        return self.views + self.sessions

    @property
    def best_csload(self) -> float:
        return min(self.csload_seconds)

    @property
    def best_duckdb(self) -> float:
        return min(self.duckdb_seconds)

    @property
    def ratio(self) -> float:
        return self.best_csload / self.best_duckdb

    @property
    def cpu_ratio(self) -> float:
        """CPU seconds of the whole processes: robust when other work shares the machine."""
        return min(self.csload_cpu_seconds) / min(self.duckdb_cpu_seconds)

    @property
    def peak_rss(self) -> float:
        return max([*self.csload_rss_mb, self.resync_rss_mb])


def measure_size(views: int, args: argparse.Namespace, work: Path) -> SizeResult:
    result = SizeResult(target_views=views, days=args.days)
    folder = work / f"views-{views}"
    log(f"== {views:,} pageviews over {args.days} days: generating (untimed) ...")
    server = Server(views, args.days, args.part_mb, folder / "parts", args.dialect)
    try:
        hello = server.hello
        runs = hello["runs"]
        result.generate_seconds = hello["generate_seconds"]
        result.parts = sum(len(r["files"]) for r in runs)
        result.gzip_mb = round(sum(r["bytes"] for r in runs) / 1e6, 1)
        log(f"   generated in {result.generate_seconds:.0f} s: {len(runs)} runs, "
            f"{result.parts} parts, {result.gzip_mb} MB gzip; serving at {hello['url']}")
        manifest = folder / "manifest.json"
        manifest.write_text(json.dumps(hello))
        plan = prepare_baseline(manifest, folder / "baseline-plan.json", args)
        result.load_before = load_average()
        result.cpu_pressure_before = cpu_pressure()
        last_db = None

        def run_baseline(i: int) -> str:
            base_db = folder / f"baseline-{i}.duckdb"
            child = run_child(baseline_cmd(plan, str(base_db)), cwd=folder)
            if child.returncode != 0:
                raise RuntimeError(f"baseline failed:\n{child.stderr[-3000:]}")
            answer = json.loads(child.stdout.strip().splitlines()[-1])
            result.duckdb_seconds.append(child.seconds)
            result.duckdb_wall_seconds.append(child.seconds)
            result.duckdb_connect_to_close_seconds.append(answer["seconds"])
            result.duckdb_rss_mb.append(child.rss_mb)
            result.duckdb_cpu_seconds.append(child.cpu_seconds)
            result.duckdb_statements.append(answer["statements"])
            counts = table_counts(base_db)   # after the process, untimed
            result.views, result.sessions = counts["views"], counts["sessions"]
            result.duckdb_file_mb.append(base_db.stat().st_size / 1e6)
            base_db.unlink()
            base_db.with_name(base_db.name + ".wal").unlink(missing_ok=True)
            st = answer["statements"]
            return (f"duckdb process {child.seconds:.2f} s (CPU {child.cpu_seconds:.1f} s; "
                    f"connect..close {answer['seconds']:.2f}: views {st['views']:.2f}, "
                    f"sessions {st['sessions']:.2f}, close {st['close']:.2f})")

        def run_csload(i: int) -> tuple[Path, str]:
            db = folder / f"csload-{i}.duckdb"
            sync, report = checked_sync(db, server, args.patch, folder)
            result.csload_seconds.append(sync.seconds)
            result.csload_rss_mb.append(sync.rss_mb)
            result.csload_cpu_seconds.append(sync.cpu_seconds)
            result.server_cpu_seconds.append(report["_server_cpu_seconds"])
            result.csload_file_mb.append(db.stat().st_size / 1e6)
            return db, (f"csload sync {sync.seconds:.2f} s (CPU {sync.cpu_seconds:.1f} s, "
                        f"simulator {report['_server_cpu_seconds']:.1f} s), "
                        f"{sync.rss_mb:.0f} MB, {report['runsLoaded']} runs, "
                        f"{report['rows']:,} rows")

        for i in range(args.repeat):
            # Alternate which goes first, so neither always follows the other's writes.
            if i % 2 == 0:
                first = run_baseline(i)
                db, second = run_csload(i)
            else:
                db, first = run_csload(i)
                second = run_baseline(i)
            counts = table_counts(db)
            ok = counts == {"views": result.views, "sessions": result.sessions}
            result.checks.setdefault("rows_match_baseline", []).append(ok)
            log(f"   round {i + 1}: {first}; {second}{'' if ok else f' MISMATCH {counts}'}")
            if last_db is not None:
                last_db.unlink()
            last_db = db

        if args.phases:
            db = folder / "phases.duckdb"
            cmd = [sys.executable, str(HERE), "--instrumented-sync", "--db", str(db)]
            cmd += [x for name in args.patch or () for x in ("--patch", name)]
            child = run_child(cmd, env=server.env(), cwd=folder)
            if child.returncode != 0:
                raise RuntimeError(f"instrumented sync failed:\n{child.stderr[-3000:]}")
            result.phases = json.loads(child.stdout.strip().splitlines()[-1])
            print_phases(result.phases)
            db.unlink()

        assert last_db is not None
        for _ in range(3):
            noop, report = checked_sync(last_db, server, args.patch, folder)
            result.noop_seconds.append(noop.seconds)
            result.noop_rss_mb.append(noop.rss_mb)
            if report["runsLoaded"]:
                raise RuntimeError(f"the no-op sync loaded {report['runsLoaded']} runs")
        log(f"   no-op sync: {', '.join(f'{s:.2f}' for s in result.noop_seconds)} s")

        days = sorted({r["day"] for r in runs})
        day = days[len(days) // 2]
        before = table_counts(last_db)
        log(f"   re-running {day} on the server (untimed) ...")
        rerun = server.rerun(day)
        new_rows = {r["scope"]: file_rows(r["files"], r["format"] == "CSV", args.dialect)
                    for r in rerun["runs"]}
        old_rows = {r["scope"]: file_rows(r["files"], r["format"] == "CSV", args.dialect)
                    for r in runs if r["day"] == day}
        resync, report = checked_sync(last_db, server, args.patch, folder)
        result.resync_seconds = resync.seconds
        result.resync_rss_mb = resync.rss_mb
        result.resync_rows = new_rows
        after = table_counts(last_db)
        expected = {t: before[t] - old_rows[t] + new_rows[t] for t in before}
        result.checks["resync_counts_ok"] = after == expected
        result.checks["resync_duplicate_keys"] = duplicate_keys(last_db)
        log(f"   re-sync of {day}: {resync.seconds:.2f} s, {resync.rss_mb:.0f} MB, "
            f"{report['runsLoaded']} runs, {report['rows']:,} rows; counts "
            f"{'ok' if after == expected else f'MISMATCH {after} != {expected}'}")

        result.load_after = load_average()
        result.cpu_pressure_after = cpu_pressure()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return result


def print_phases(phases: dict[str, Any]) -> None:
    log(f"   instrumented sync: {phases['seconds']:.2f} s, batches {phases['batches']}, "
        f"RSS {phases['rss_mb']:.0f} MB, CPU {phases['cpu_total']:.1f} s (event-loop thread "
        f"{phases['cpu_main_thread']:.1f} s)")
    for name, p in sorted(phases["phases"].items(), key=lambda kv: kv[1]["first_start"]):
        cpu = "" if p["cpu"] is None else f"thread CPU {p['cpu']:6.2f} s"
        log(f"     {name:<34} x{p['count']:<4} busy {p['sum']:7.2f} s  {cpu:<21}"
            f"[{p['first_start']:6.2f} .. {p['last_end']:6.2f}]")


# --- reporting -------------------------------------------------------------------------------


def log(text: str) -> None:
    print(text, flush=True)


def print_table(results: list[SizeResult]) -> None:
    head = ("rows (views+sessions)", "csload s", "DuckDB s", "ratio", "csload rows/s",
            "DuckDB rows/s", "peak RSS MB", "no-op s", "re-sync s", "CPU ratio")
    lines = []
    for r in results:
        lines.append((
            f"{r.rows:,} ({r.views:,}+{r.sessions:,})",
            f"{r.best_csload:.2f}", f"{r.best_duckdb:.2f}", f"{r.ratio:.2f}x",
            f"{r.rows / r.best_csload / 1e3:,.0f} k", f"{r.rows / r.best_duckdb / 1e3:,.0f} k",
            f"{r.peak_rss:.0f}", f"{min(r.noop_seconds):.2f}", f"{r.resync_seconds:.2f}",
            f"{r.cpu_ratio:.2f}x"))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    print()
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    print()
    print("csload s: best of the `csload sync` process wall clocks, spawn to exit; DuckDB s: "
          "best of the baseline process wall clocks, spawn to exit (duckdb_load.py: Python "
          "start-up, import duckdb, CREATE TABLE AS read_csv/read_json over the same gzip "
          "files, close with its checkpoint). CPU ratio: best csload process CPU seconds / best "
          "baseline process CPU seconds (wait4 rusage of each).")
    for r in results:
        print(f"{r.target_views:,} views: csload {fmt_list(r.csload_seconds)} s, "
              f"duckdb {fmt_list(r.duckdb_seconds)} s (connect..close: "
              f"{fmt_list(r.duckdb_connect_to_close_seconds)} s, CPU "
              f"{fmt_list(r.duckdb_cpu_seconds, 1)} s, "
              f"RSS {max(r.duckdb_rss_mb):.0f} MB); csload CPU "
              f"{fmt_list(r.csload_cpu_seconds, 1)} s, RSS {fmt_list(r.csload_rss_mb, 0)} MB; "
              f"no-op {fmt_list(r.noop_seconds)} s; load avg {r.load_before} -> "
              f"{r.load_after}, CPU pressure (PSI some avg60) {r.cpu_pressure_before} -> "
              f"{r.cpu_pressure_after} %")
    worst = max(results, key=lambda r: r.ratio)
    verdicts = [
        (f"csload <= {TARGET_RATIO}x DuckDB", worst.ratio <= TARGET_RATIO,
         f"worst {worst.ratio:.2f}x"),
        (f"peak RSS < {TARGET_RSS_MB} MB", max(r.peak_rss for r in results) < TARGET_RSS_MB,
         " / ".join(f"{r.peak_rss:.0f}" for r in results) + " MB"),
        (f"no-op sync < {TARGET_NOOP_S} s",
         max(min(r.noop_seconds) for r in results) < TARGET_NOOP_S,
         " / ".join(f"{min(r.noop_seconds):.2f}" for r in results) + " s"),
        ("rows match DuckDB's load, re-sync counts exact, no duplicate keys",
         all(all(r.checks["rows_match_baseline"]) and r.checks["resync_counts_ok"]
             and not any(r.checks["resync_duplicate_keys"].values()) for r in results), ""),
    ]
    if len(results) > 1:
        small, large = results[0], results[-1]
        grew = large.peak_rss / small.peak_rss
        verdicts.append((f"RSS flat with rows ({large.rows / small.rows:.1f}x rows)",
                         grew < 1.2, f"{grew:.2f}x RSS"))
    for name, ok, detail in verdicts:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name} {detail}")


def fmt_list(values: list[float], digits: int = 2) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def git_state() -> dict[str, Any]:
    """The commit measured, and which files differed from it (the library may be mid-change)."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=HERE.parent.parent, capture_output=True,
                                  text=True, check=False).stdout.rstrip("\n")
        except OSError:
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "modified": git("status", "--short", "--untracked-files=no").splitlines()}


def write_json(results: list[SizeResult], args: argparse.Namespace, started: datetime) -> Path:
    import duckdb

    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = (("-quick" if args.quick else "") + ("-patched" if args.patch else "")
              + ("" if args.dialect == "contract" else f"-{args.dialect}")
              + ab_patches.suffix(os.environ.get(ab_patches.ENV)))
    path = RESULTS / f"bench_sync-{started:%Y-%m-%d}{suffix}.json"
    if path.exists():
        path = RESULTS / f"bench_sync-{started:%Y-%m-%dT%H%M%S}{suffix}.json"
    payload = {
        "started": started.isoformat(),
        "code": git_state(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "duckdb": duckdb.__version__, "platform": platform.platform()},
        # str(): --workdir is a Path (the results of a run with it were lost to a TypeError).
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                    if not k.startswith("_")},
        "targets": {"ratio": TARGET_RATIO, "rss_mb": TARGET_RSS_MB, "noop_s": TARGET_NOOP_S},
        "baseline_timing": BASELINE_TIMING,
        "ab_switches": os.environ.get(ab_patches.ENV),
        "sizes": [{**asdict(r), "rows": r.rows, "best_csload_seconds": r.best_csload,
                   "best_duckdb_seconds": r.best_duckdb, "ratio": round(r.ratio, 3),
                   "cpu_ratio": round(r.cpu_ratio, 3),
                   "csload_rows_per_second": round(r.rows / r.best_csload),
                   "duckdb_rows_per_second": round(r.rows / r.best_duckdb),
                   "peak_rss_mb": round(r.peak_rss, 1)} for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# --- main --------------------------------------------------------------------------------------


def common_parser(doc: str | None, baseline_name: str) -> argparse.ArgumentParser:
    """The options bench_sync and bench_parquet share (with their internal modes)."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,2000000",
                        help="pageview counts to measure, comma-separated [1000000,2000000]")
    parser.add_argument("--days", type=int, default=5, help="daily runs per job [5]")
    parser.add_argument("--dialect", choices=("contract", "clickhouse"), default="contract",
                        help="the files the simulator writes: the contract's, or ClickHouse's "
                             "defaults (no CSV header, every string quoted, 64-bit integers as "
                             "JSON strings, wide integers) [contract]")
    parser.add_argument("--part-mb", type=int, default=32,
                        help="maximum uncompressed MB per part [32]")
    parser.add_argument("--repeat", type=int, default=3,
                        help=f"rounds of ({baseline_name}, csload sync) per size; best counts [3]")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100k pageviews, 2 days, 1 round")
    parser.add_argument("--phases", action="store_true",
                        help="one more, instrumented sync per size: where the time goes")
    parser.add_argument("--patch", action="append", default=[], metavar="NAME[=VALUE]",
                        help="experimental change monkeypatched into the measured syncs: "
                        + ", ".join([*PATCHES, *(f"{n}=VALUE" for n in PATCHES_WITH_VALUE)]))
    parser.add_argument("--baseline-memory-limit", metavar="SIZE",
                        help="SET memory_limit for the DuckDB baseline (default: DuckDB's)")
    parser.add_argument("--workdir", type=Path, help="folder for files (default: a temp dir)")
    parser.add_argument("--no-json", action="store_true", help="do not write results JSON")
    # Internal modes (the script runs itself to write the baseline's SQL, the instrumented
    # sync, ...).
    parser.add_argument("--baseline-plan", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instrumented-sync", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        args.sizes, args.days, args.repeat, args.part_mb = "100000", 2, 1, 8
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common_parser(__doc__, "DuckDB load")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--patched-cli", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rest and not args.patched_cli:
        parser.error(f"unexpected arguments: {' '.join(args.rest)}")
    return apply_quick(args)


def compile_csload() -> None:
    """Byte-compile csload's modules, as `pip install` does for a wheel. Run from a source
    checkout with PYTHONDONTWRITEBYTECODE set (as on the development machine), every csload
    start would compile them again (~40 ms), which no installed csload pays."""
    import compileall

    import csload

    compileall.compile_dir(str(Path(csload.__file__).parent), quiet=1)


def run_sizes(args: argparse.Namespace, name: str,
              measure: Callable[[int, argparse.Namespace, Path], Any],
              show: Callable[[list[Any]], None],
              save: Callable[[list[Any], argparse.Namespace, datetime], Path]) -> None:
    """Measure every size of `--sizes` in a work folder, print the table, save the JSON."""
    started = datetime.now(UTC)
    sizes = [int(s) for s in args.sizes.split(",")]
    ab = os.environ.get(ab_patches.ENV)
    ab_patches.parse(ab)   # an unknown switch fails now, not after the first size
    compile_csload()
    startup = run_child([*CSLOAD, "--version"])
    duckdb_import = run_child([sys.executable, "-c", "import duckdb"])
    log(f"csload {name}: sizes {sizes}, {args.days} days, parts <= {args.part_mb} MB, "
        f"{args.repeat} rounds, patches {args.patch or 'none'}, "
        f"{'' if ab is None else f'A/B switches {ab!r} (csload_ab.py), '}"
        f"dialect {args.dialect}; {os.cpu_count()} CPUs, "
        f"load average {load_average()}; `csload --version` takes {startup.seconds:.2f} s, "
        f"`python -c 'import duckdb'` {duckdb_import.seconds:.2f} s")
    results = []
    with (contextlib.nullcontext(args.workdir) if args.workdir
          else tempfile.TemporaryDirectory(prefix=f"csload-{name.replace('_', '-')}-")) as work:
        for views in sizes:
            # Absolute: the baseline's plan names the parts, read from another working folder.
            results.append(measure(views, args, Path(work).resolve()))
    show(results)
    args.startup_seconds = round(startup.seconds, 3)
    args.duckdb_import_seconds = round(duckdb_import.seconds, 3)
    if not args.no_json:
        path = save(results, args, started)
        print(f"\nresults: {path}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve:
        return serve(args)
    if args.baseline_plan:
        return baseline_plan(args)
    if args.instrumented_sync:
        return instrumented_sync(args)
    if args.patched_cli:
        return patched_cli(args)
    run_sizes(args, "bench_sync", measure_size, print_table, write_json)
    return None


if __name__ == "__main__":
    main()
