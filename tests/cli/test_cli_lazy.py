"""Start-up: `csload sync` imports only what a sync needs; every command is still there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from csload.cli import COMMANDS, main

# Modules a sync never uses: the backfill engine, the other commands, the status reader.
NOT_FOR_SYNC = ("csload.backfills.engine", "csload.load.backfill_ledger", "csload.api.jobspec",
                "csload.load.status", "csload.cli.status", "csload.cli.manage", "csload.cli.read",
                "csload.cli.demo", "csload.cli.simulate", "csload.simulator", "rich.progress",
                "rich.table")


def imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    return set(out.split())


def test_importing_the_package_and_the_cli_imports_no_engine() -> None:
    loaded = imported_after("import csload, csload.cli")
    assert not {"csload.pipeline.sync", "duckdb", "aiohttp", *NOT_FOR_SYNC} & loaded


def test_the_sync_command_imports_nothing_only_other_commands_use() -> None:
    loaded = imported_after("import csload.cli.sync")
    assert "csload.pipeline.sync" in loaded
    assert not set(NOT_FOR_SYNC) & loaded


def test_the_http_client_is_imported_while_the_store_opens(tmp_path: Path) -> None:
    # Importing aiohttp (~0.13 s, holding the GIL) overlaps with DuckDB opening the database
    # (which mostly releases it): the pipeline module itself does not import the client.
    loaded = imported_after("import csload.cli.sync, csload.pipeline.sync")
    assert "duckdb" in loaded
    assert not {"aiohttp", "csload.api.client", "csload.transfer.stage"} & loaded
    script = ("import sys\n"
              "from pathlib import Path\n"
              "from csload.pipeline.sync import _open_importing_client\n"
              "from csload.target import Target\n"
              "from csload.config import Limits\n"
              f"store = _open_importing_client(Target.of(db=Path({str(tmp_path / 'a.duckdb')!r}), "
              "parquet=None), Limits())\n"
              "print(type(store).__name__, 'aiohttp' in sys.modules, "
              "'csload.transfer.stage' in sys.modules)\n"
              "store.close()\n")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    assert out.split() == ["DuckDBStore", "True", "True"]


def test_the_status_command_and_connect_import_no_api_client() -> None:
    # They only read the database: the HTTP client (aiohttp, ~0.12 s) is not theirs to load.
    loaded = imported_after("import csload, csload.cli.status, csload.load.status\n"
                            "csload.connect")
    assert "csload.load.status" in loaded and "duckdb" in loaded
    assert not {"aiohttp", "csload.api.client", "csload.pipeline.sync"} & loaded


def test_every_lazy_command_resolves_to_its_name() -> None:
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name


def test_help_lists_every_command_with_its_short_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:")[1]
    for name in COMMANDS:
        assert f"  {name} " in listed
    assert "Load every new successful run into DuckDB" in listed
    jobs = CliRunner().invoke(main, ["jobs", "--help"])
    assert "create  Create an export job" in jobs.output
    assert "show    Show one export job" in jobs.output


def test_a_command_leaves_the_last_garbage_collection_out() -> None:
    # Registered before the command runs, this handler runs after csload's (atexit is last in,
    # first out): the objects are frozen by then, so the interpreter's final collection skips
    # them. Before, it took 50-70 ms of every run.
    script = ("import atexit, gc\n"
              "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
              "from csload.cli import main\n"
              "main(['status', '--help'])\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).stdout
    assert out.splitlines()[-1] == "frozen True"
