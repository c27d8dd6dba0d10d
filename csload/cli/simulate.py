"""`csload simulate`: the local Export API simulator, in the foreground."""

from __future__ import annotations

from typing import Any

import click

from csload.cli.common import fail


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port).")
@click.option("--days", default=3, show_default=True, type=click.IntRange(0, 400),
              help="Days of daily runs to seed, ending with the last finished day.")
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the data.")
@click.option("--sessions-per-day", type=click.IntRange(1), help="Mean sessions per day.")
@click.option("--dialect", type=click.Choice(["contract", "clickhouse"]), default="contract",
              show_default=True,
              help="What the files and lists look like: the contract's guesses, or what a "
                   "ClickHouse-based export engine writes by default (no CSV header, every "
                   "string quoted, 64-bit integers as JSON strings, wide integers, pages of 50, "
                   "...: contract section 9).")
def simulate(host: str, port: int, days: int, seed: int, sessions_per_day: int | None,
             dialect: str) -> None:
    """Run the local simulator of the Contentsquare Export API (until Ctrl-C)."""
    from csload.simulator import SimConfig, run_forever
    from csload.simulator.config import dialect_variants

    extra: dict[str, Any] = {}
    if sessions_per_day is not None:
        extra["sessions_per_day"] = sessions_per_day
    config = SimConfig(seed=seed, days=days, variants=dialect_variants(dialect), **extra)

    def ready(base_url: str) -> None:
        click.echo(f"Simulator of the Contentsquare Export API listening on {base_url} "
                   f"(dialect: {dialect})")
        click.echo("Settings to use (e.g. `export` them in another shell):")
        for line in config.env_lines(base_url):
            click.echo(line)
        click.echo("Press Ctrl-C to stop.", err=True)

    try:
        run_forever(host, port, config, ready)
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
