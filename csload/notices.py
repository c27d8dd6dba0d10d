"""Warnings a user should find in a sync's report (`warnings`, `--json`), not only in its log:
said where they happen (`notice`), gathered for the sync running in this context (`gather`).

A table the user dropped and loaded again, or another writer's commits a lake kept, were log
lines only: an orchestrator reading `--json` saw `"warnings": []` (QA, 2026-12-08). The
store's work runs in worker threads; a context variable reaches them (anyio copies the context
into each), where passing a list through every layer of the store would not.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

_GATHERED: ContextVar[list[str] | None] = ContextVar("csload_notices", default=None)


def notice(logger: logging.Logger, message: str, *args: object) -> None:
    """`logger.warning(message, *args)`, and the text in the running sync's report."""
    logger.warning(message, *args)
    gathered = _GATHERED.get()
    if gathered is not None:
        gathered.append(message % args if args else message)


def gather() -> list[str]:
    """Start gathering the notices of this context (a sync's): the list they go to."""
    gathered: list[str] = []
    _GATHERED.set(gathered)
    return gathered
