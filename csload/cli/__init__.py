"""The `csload` command: a thin skin over the library. The only package that prints or exits.

Exit codes: 0 success; 1 failed before doing anything (configuration, authentication, API);
2 usage error (click's own); 3 finished but some runs failed or had expired.
"""

from __future__ import annotations

import atexit
import gc
import logging

import click

from csload.cli.lazy import LazyGroup

# Lazy: each command's module is imported only when that command runs (or `--help` lists
# them), so `csload sync` does not import the backfill engine, the job management commands or
# the other commands' tables. Command name -> "module:attribute".
COMMANDS = {
    "sync": "csload.cli.sync:sync",
    "status": "csload.cli.status:status",
    "backfill": "csload.cli.manage:backfill",
    "demo": "csload.cli.demo:demo",
    "jobs": "csload.cli.read:jobs",
    "runs": "csload.cli.read:runs",
    "fields": "csload.cli.read:fields",
    "custom-vars": "csload.cli.manage:custom_vars",
    "dynamic-vars": "csload.cli.manage:dynamic_vars",
    "simulate": "csload.cli.simulate:simulate",
    "doctor": "csload.cli.doctor:doctor",
}


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="csload")
@click.option("-v", "--verbose", count=True, help="More log lines (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Load Contentsquare Data Export API runs into DuckDB, exactly once."""
    # The interpreter's last garbage collection, over the objects of every module a command
    # imports (aiohttp, duckdb, rich, ...), took 50-70 ms of each csload run, after the work was
    # done. Commands close what they open before they return, so that pass has nothing to
    # free; frozen objects are left out of it (the process's exit frees them). Once per run.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
