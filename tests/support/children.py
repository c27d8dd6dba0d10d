"""Starting a test helper as a process of its own: `python -m tests.support.<module>`.

The helpers are modules of the `tests` package, imported as such (never through sys.path), so
a child runs with the repository root on PYTHONPATH; its working folder stays the test's own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def child_command(module: str, *args: str) -> list[str]:
    """The command that runs `module` (e.g. "tests.support.sync_child") with `args`."""
    return [sys.executable, "-m", module, *args]


def child_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (this process's environment when None) with the repository root first on
    PYTHONPATH, so that `python -m tests....` finds the package from any working folder."""
    result = dict(os.environ if env is None else env)
    rest = result.get("PYTHONPATH")
    result["PYTHONPATH"] = str(REPO_ROOT) if not rest else f"{REPO_ROOT}{os.pathsep}{rest}"
    return result
