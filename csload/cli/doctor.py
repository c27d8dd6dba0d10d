"""`csload doctor`: a skin over csload.doctor (the checks and their rules are documented there)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from csload import __version__
from csload.cli.common import (
    connection_options,
    console,
    fail,
    labelled,
    print_json,
    scrub,
    usage_checked,
)
from csload.config import load_settings, read_lake_options, setting_sources
from csload.doctor.report import DoctorReport, Verdict
from csload.doctor.run import report_without_settings, run_doctor
from csload.doctor.save import check_save_folder, save_report
from csload.errors import CsloadError
from csload.target import check_one_target

_STYLES = {Verdict.OK: "bold green", Verdict.WARN: "bold yellow", Verdict.FAIL: "bold red",
           Verdict.SKIP: "dim"}
_CONNECTION = ("client_id", "client_secret", "project_id", "auth_url")


@click.command()
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path),
              help="The DuckDB database a sync would write [default: contentsquare.duckdb].")
@click.option("--parquet", metavar="ROOT",
              help="Check a lake of Delta tables instead: a folder, or "
                   "s3://bucket/prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--save", "save_dir", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR",
              help="Also write the report and the raw responses, secrets removed, into DIR "
                   "(new or empty), ready to attach to a bug report.")
@connection_options
def doctor(db: Path | None, parquet: str | None, as_json: bool, save_dir: Path | None,
           **params: Any) -> None:
    """Check that csload can work with your project: settings, credentials, API endpoint,
    jobs and fields, what the files really look like, and the target. Exit 0 when it can
    (warnings allowed), 1 when not."""
    usage_checked(check_one_target, db, parquet, flags=True)
    if save_dir is not None:
        # A usage error (exit 2), as click's own refusal of a file given for DIR.
        usage_checked(check_save_folder, save_dir)
    config_file: Path | None = params.get("config_file")
    flags = {name: params.get(name) for name in _CONNECTION}
    sources = setting_sources(flags, config_file=config_file)
    try:
        settings = load_settings(overrides=flags, config_file=config_file)
    except CsloadError as exc:
        report = report_without_settings(str(exc), sources=sources, db=db, parquet=parquet,
                                         storage_options=_lake_options(config_file))
    else:
        report = run_doctor(settings, db=db, parquet=parquet, sources=sources,
                            config_file=config_file)
    if as_json:
        print_json(report.to_json())
    else:
        _print(report)
    if save_dir is not None:
        try:
            saved = save_report(report, save_dir)
        except (OSError, CsloadError) as exc:
            fail(f"--save {save_dir}: {exc}")
        console("stderr").print(f"saved {len(saved)} files into {save_dir} (secrets removed; "
                                "samples/ holds your project's data)")
    sys.exit(report.exit_code)


def _lake_options(config_file: Path | None) -> dict[str, str]:
    try:
        return read_lake_options(config_file)
    except CsloadError:
        return {}


def _print(report: DoctorReport) -> None:
    """The report, one line per check and its details. csload.doctor escapes what the API and
    the files sent (`clean`); every line is scrubbed here all the same (`labelled` and `scrub`),
    so that a check that forgot to cannot put a terminal escape on the screen."""
    out = console("stdout")
    mode = " (simulator mode)" if report.simulator else ""
    out.print(labelled("csload doctor", "bold", f" {__version__}{mode}"))
    width = max(len(check.title) for check in report.checks.values())
    for check in report.checks.values():
        label = f"{check.verdict.value:<5} "
        out.print(labelled(label, _STYLES[check.verdict],
                           f"{check.title:<{width}}  {check.summary}"))
        for line in check.details:
            out.print(f"{'':8}{scrub(line)}")
        if check.hint and check.verdict in (Verdict.WARN, Verdict.FAIL):
            out.print(labelled(f"{'':8}-> ", "bold", check.hint))
    style = "bold green" if report.ok else "bold red"
    out.print(labelled("result: ", style, report.conclusion))
