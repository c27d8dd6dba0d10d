"""What every command shares: connection options, settings, running async work, failing."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import click
import orjson

from csload.config import Settings, load_settings
from csload.errors import ConfigError, CsloadError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    # Lazy (in `run_with_client`): `csload simulate` uses this module but not the API client,
    # which imports aiohttp.
    from csload.api.client import ExportClient

    # Made on first use (module __getattr__ below).
    stdout: Console
    stderr: Console

T = TypeVar("T")

EXIT_FAILED = 1
# The width of a console that is not a terminal: wide enough for any table csload prints.
OFF_TERMINAL_WIDTH = 4096

_CONSOLES: dict[str, Console] = {}


def console(name: str) -> Console:
    """The rich Console of `stdout` or `stderr`, made on first use: a command that prints
    only JSON (`csload sync --json`, run by schedulers) never imports rich (~20 ms)."""
    made = _CONSOLES.get(name)
    if made is None:
        from rich.console import Console

        # No markup: what csload prints holds text it does not control (job names, field
        # names, error messages quoting a part's line), which rich would read as tags:
        # `[daily] views` lost its `[daily]`, a `[/]` crashed the command. Styles are applied
        # explicitly (`labelled`).
        made = Console(stderr=name == "stderr", soft_wrap=True, markup=False, highlight=False)
        if not made.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
            # Piped or in a cron log, rich would assume 80 columns and cut table cells
            # (`SUSPEND…`, dates split over two lines): a table takes the width it needs.
            # COLUMNS, when set, is the user's own choice of width.
            made.width = OFF_TERMINAL_WIDTH
        _CONSOLES[name] = made
    return made


def __getattr__(name: str) -> Any:
    if name in ("stdout", "stderr"):
        return console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def labelled(label: str, style: str, text: str) -> Text:
    """`label` in `style`, then `text` exactly as it is."""
    from rich.text import Text

    return Text.assemble((label, style), text)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    console("stderr").print(labelled("error:", "bold red", f" {message}"))
    sys.exit(code)


def usage_checked(check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a check of user input that the Python API shares: its ConfigError is a usage
    error here (click's one `Error:` line, exit 2)."""
    try:
        return check(*args, **kwargs)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The settings every API command takes; they win over the environment and csload.toml."""
    options = [
        click.option("--client-id", help="OAuth client id [env: CONTENTSQUARE_CLIENT_ID]"),
        click.option("--client-secret",
                     help="OAuth client secret [env: CONTENTSQUARE_CLIENT_SECRET]"),
        click.option("--project-id", type=int,
                     help="Project id, for account-level credentials "
                          "[env: CONTENTSQUARE_PROJECT_ID]"),
        click.option("--auth-url",
                     help="Authentication base URL [env: CONTENTSQUARE_AUTH_URL; "
                          "default https://api.contentsquare.com]"),
        click.option("--config", "config_file", type=click.Path(path_type=Path),
                     help="Settings file [default: ./csload.toml if present]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(params: dict[str, Any]) -> Settings:
    """Settings from the connection options of a command (flags > env > file)."""
    overrides = {name: params.pop(name, None)
                 for name in ("client_id", "client_secret", "project_id", "auth_url", "limits")}
    try:
        return load_settings(overrides=overrides, config_file=params.pop("config_file", None))
    except CsloadError as exc:
        fail(str(exc))


def run_with_client(settings: Settings, action: Callable[[ExportClient], Awaitable[T]]) -> T:
    """Run one async action with a connected client; turn csload errors into a clean exit."""
    from csload.api.client import ExportClient

    async def main() -> T:
        async with ExportClient(settings) as client:
            return await action(client)

    try:
        return anyio.run(main)
    except CsloadError as exc:
        fail(str(exc))


def ts(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")


