"""The `csload` command: a thin skin over the library. The only package that prints or exits.

Exit codes: 0 success; 1 failed before doing anything (configuration, authentication, API);
2 usage error (click's own); 3 finished but some runs failed or had expired.

An exception csload did not expect is one scrubbed `error:` line and exit 1, never a
traceback (it could quote a signed URL or a terminal escape read from a file); `csload --debug
COMMAND` shows the traceback instead.
"""

from __future__ import annotations

import atexit
import gc
import logging
from typing import Any

import click

from csload.cli.common import (
    ARGV_KEY,
    DEBUG_KEY,
    EXIT_INTERRUPTED,
    StderrHandler,
    fail,
    fail_unexpected,
    print_json_error,
)
from csload.cli.lazy import LazyGroup
from csload.cli.streams import steady_streams

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
    "lake": "csload.cli.lake:lake",
}


class CsloadGroup(LazyGroup):
    """The `csload` group: a usage error (exit 2) of a command run with --json also prints
    the JSON error object on stdout, as csload.cli.common.fail does for every other error."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept for json_wanted: a usage error can come before --json is read.
        ctx.meta[ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            # Click prints the line on stderr and exits, once this returns.
            where = exc.ctx if isinstance(exc, click.UsageError) and exc.ctx else ctx
            print_json_error(exc.format_message(), type(exc).__name__, exc.exit_code, where)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise   # click's own ways out (RuntimeErrors, not failures)
        except KeyboardInterrupt:
            # Ctrl-C while a command starts or ends, outside its own handling of signals
            # (csload.cli.interrupt): click said "Aborted!" and exited 1, a failure's code,
            # with nothing on stdout under --json (QA's kill soak, 2026-12-07).
            fail("interrupted by SIGINT while the command started or ended: what it committed "
                 "stays; run it again (a sync loads exactly the rest)", EXIT_INTERRUPTED,
                 kind="Interrupted")
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as exc:
            # An Exception, or what a Rust library raises when the host refuses it a thread
            # (deltalake's PanicException is a BaseException): one line, not ~60 of traceback
            # (QA, 2026-12-08).
            if ctx.meta.get(DEBUG_KEY):
                raise
            fail_unexpected(exc)


@click.group(cls=CsloadGroup, lazy_subcommands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="csload")
@click.option("-v", "--verbose", count=True, help="More log lines (-v info, -vv debug).")
@click.option("--debug", is_flag=True,
              help="Show the traceback of an unexpected error (else one line).")
@click.pass_context
def main(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Load Contentsquare Data Export API runs into DuckDB or a lake of Delta tables,
    exactly once."""
    ctx.meta[DEBUG_KEY] = debug
    steady_streams()   # what csload prints never stops the work (csload.cli.streams)
    # The interpreter's last garbage collection, over the objects of every module a command
    # imports (aiohttp, duckdb, rich, ...), took 50-70 ms of each csload run, after the work was
    # done. Commands close what they open before they return, so that pass has nothing to
    # free; frozen objects are left out of it (the process's exit frees them). Once per run.
    # Issue 17's A/B (benchmarks/results/ab-2026-12-06.md): without it the no-op sync's
    # median is 7 % and 12 % longer (two runs of 20 and 15 interleaved syncs each); a 1 M-row
    # sync cannot tell.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    level = logging.WARNING - 10 * min(verbose, 2)
    # One format for log records and for the progress lines printed off a terminal
    # (csload.cli.common.LOG_FORMAT): a timestamp on every line of a cron log.
    logging.basicConfig(level=level, handlers=[StderrHandler()])
