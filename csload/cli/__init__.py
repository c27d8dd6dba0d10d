"""The `csload` command: a thin skin over the library. The only package that prints or exits.

Exit codes: 0 success; 1 failed before doing anything (configuration, authentication, API);
2 usage error (click's own); 3 finished but some runs failed or had expired.
"""

from __future__ import annotations

import logging

import click

from csload.cli.demo import demo
from csload.cli.manage import backfill, create, custom_vars, dynamic_vars
from csload.cli.read import fields, jobs, runs
from csload.cli.simulate import simulate
from csload.cli.sync import status, sync


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="csload")
@click.option("-v", "--verbose", count=True, help="More log lines (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Load Contentsquare Data Export API runs into DuckDB, exactly once."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

for command in (sync, status, backfill, demo, jobs, runs, fields, custom_vars, dynamic_vars,
                simulate):
    main.add_command(command)
jobs.add_command(create)
