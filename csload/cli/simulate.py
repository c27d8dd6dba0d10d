"""`csload simulate`: the local Export API simulator, in the foreground."""

from __future__ import annotations

from typing import Any

import click

from csload.cli.common import fail


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (keep it on loopback).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free).")
@click.option("--days", default=3, show_default=True, type=int,
              help="Daily runs to seed, ending yesterday.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the data.")
@click.option("--sessions-per-day", default=None, type=int, help="Sessions per day.")
def simulate(host: str, port: int, days: int, seed: int, sessions_per_day: int | None) -> None:
    """Run the local simulator of the Contentsquare Export API (until Ctrl-C)."""
    from csload.simulator import SimConfig, run_forever

    extra: dict[str, Any] = {}
    if sessions_per_day is not None:
        extra["sessions_per_day"] = sessions_per_day
    config = SimConfig(seed=seed, days=days, **extra)

    def ready(base_url: str) -> None:
        client_id, client_secret, project_id = config.client_id, config.client_secret, \
            config.project_id
        click.echo(f"Simulator of the Contentsquare Export API listening on {base_url}")
        click.echo("Use these settings (e.g. `export` them in another shell):")
        click.echo(f"CONTENTSQUARE_CLIENT_ID={client_id}")
        click.echo(f"CONTENTSQUARE_CLIENT_SECRET={client_secret}")
        click.echo(f"CONTENTSQUARE_PROJECT_ID={project_id}")
        click.echo(f"CONTENTSQUARE_AUTH_URL={base_url}")
        click.echo("Press Ctrl-C to stop.", err=True)

    try:
        run_forever(host, port, config, ready)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
