"""Switches that turn off, one at a time, each speed mechanism issue 17 asks to justify.

    CSLOAD_BENCH_AB=none           python benchmarks/bench_sync.py --sizes 1000000   # A
    CSLOAD_BENCH_AB=no-gc-freeze   python benchmarks/bench_sync.py --sizes 1000000   # B

With `CSLOAD_BENCH_AB` set (even to `none`), bench_sync.py, bench_parquet.py and
bench_slow_network.py run every `csload sync` through `benchmarks/csload_ab.py`, a launcher as
lean as the installed `csload` script, so both arms of an A/B start the same way: the
mechanisms at stake cost or save 20-60 ms of a process, and `bench_sync.py --patched-cli`
(the `--patch` launcher) itself adds ~30 ms. The value is a comma-separated list of names of
SWITCHES (or `none`); results files get `-ab-<names>` and record it. Every switch only
monkeypatches csload in the sync's own process; csload's files are not changed.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

ENV = "CSLOAD_BENCH_AB"


def _require(owner: Any, name: str) -> None:
    """A switch whose target csload renamed or removed fails, rather than patching nothing."""
    if not hasattr(owner, name):
        raise SystemExit(f"{ENV}: {getattr(owner, '__name__', owner)}.{name} is gone: "
                         "update benchmarks/ab_patches.py")


def _no_open_overlap() -> None:
    """Open the target, then import the HTTP client and downloader, one after the other
    (csload.pipeline.sync._open_importing_client overlaps them in two threads, ~25 ms)."""
    import csload.pipeline.sync

    _require(csload.pipeline.sync, "_open_importing_client")

    def open_only(target: Any, limits: Any) -> Any:
        return target.open(limits)

    csload.pipeline.sync._open_importing_client = open_only


def _no_gc_freeze() -> None:
    """Let the interpreter's final garbage collection run over every object (csload.cli.main
    registers `atexit(gc.freeze)` to skip it, ~60 ms)."""
    import csload.cli

    _require(csload.cli, "atexit")
    # main() looks `atexit` up in its module when it runs: one without the registration.
    setattr(csload.cli, "atexit",  # noqa: B010  (mypy: a module replaced by a namespace)
            SimpleNamespace(register=lambda func: func, unregister=atexit.unregister))


def _batch_linger(seconds: str) -> None:
    """Another default for `Limits.batch_linger` (0.25 s): `0` turns off the writer's waiting
    to fill a batch (csload.pipeline.batching.fill_batch then takes only the runs already
    staged)."""
    from csload.config import Limits

    defaults = Limits.__init__.__kwdefaults__
    assert defaults is not None and "batch_linger" in defaults
    defaults["batch_linger"] = float(seconds)


def _verify_while_downloading() -> None:
    """Inflate every part while it downloads, as before the skip-inflate path
    (csload.transfer.stage passes `verify_gzip=redo is not None`: the first download is only
    length-checked, the load finds a damaged stream and Redo downloads it again, verified)."""
    from csload.transfer.host import StorageHost

    original = StorageHost.download_part

    async def download_part(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["verify_gzip"] = True
        return await original(self, *args, **kwargs)

    StorageHost.download_part = download_part  # type: ignore[method-assign]


SWITCHES: dict[str, Callable[[], None]] = {
    "no-open-overlap": _no_open_overlap,
    "no-gc-freeze": _no_gc_freeze,
    "verify-while-downloading": _verify_while_downloading,
}
SWITCHES_WITH_VALUE: dict[str, Callable[[str], None]] = {
    "batch-linger": _batch_linger,
}


def parse(value: str | None) -> list[str]:
    """The switches named in `value` (comma-separated; `none` or empty: none). Raises
    SystemExit on an unknown name, before anything is measured."""
    names = [n.strip() for n in (value or "").split(",") if n.strip() and n.strip() != "none"]
    for spec in names:
        name, _, arg = spec.partition("=")
        if not ((name in SWITCHES and not arg) or (name in SWITCHES_WITH_VALUE and arg)):
            raise SystemExit(f"{ENV}: unknown switch {spec!r}: one of {sorted(SWITCHES)} or "
                             f"{[n + '=VALUE' for n in SWITCHES_WITH_VALUE]}, or none")
    return names


def apply(value: str | None) -> None:
    """Apply the switches named in `value` (see parse) to csload in this process."""
    for spec in parse(value):
        name, _, arg = spec.partition("=")
        if arg:
            SWITCHES_WITH_VALUE[name](arg)
        else:
            SWITCHES[name]()


def suffix(value: str | None) -> str:
    """The results file's suffix for an A/B run (`-ab-none`, `-ab-no-gc-freeze`), else ''."""
    if value is None:
        return ""
    names = parse(value) or ["none"]
    return "-ab-" + "+".join(n.replace("=", "") for n in names)
