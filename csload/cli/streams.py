"""stdout and stderr that cannot stop a command half way.

What csload prints is a report on work that matters more than the report: a sync whose log
file sat on a full disk stopped at its first log line and loaded nothing (exit 1, nothing
said); one piped into `head -1` did the same; one whose summary could not be written exited 1,
"a bug in csload", after every run had committed. And in a locale whose encoding lacks a
character of a job name or of csload's own text (ISO-8859-1 and "—"), every sync ended in a
UnicodeEncodeError after its commit, `--json` printing nothing.

`steady_streams` puts a `SteadyStream` around each: a character the encoding lacks is
written as its `\\uXXXX` escape, and once a write fails (ENOSPC, EPIPE, EIO) the stream stops
writing; the command goes on and exits with its own code.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any, TextIO


class SteadyStream:
    """A text stream whose `write` and `flush` never raise (see the module's docstring)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._stream.write(text)
            except UnicodeEncodeError:
                return self._write_escaped(text)
            except OSError as exc:
                self._lose(exc)
        return len(text)

    def _write_escaped(self, text: str) -> int:
        encoding = getattr(self._stream, "encoding", None) or "ascii"
        try:
            self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        except (OSError, UnicodeError) as exc:
            self._lose(exc)
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError as exc:
                self._lose(exc)

    def _lose(self, error: BaseException) -> None:
        self.lost = True
        if (self._stream is sys.__stdout__ and isinstance(sys.stderr, SteadyStream)
                and not isinstance(error, BrokenPipeError)):   # `| head`: what was asked
            # The exit code stays the work's; who reads the report should know it is lost
            # (`sync --json > /dev/full` exited 0, nothing said: QA, 2026-12-08).
            sys.stderr.write(f"csload: the output could not be written ({error}); the command "
                             "went on\n")
        # The interpreter flushes the stream itself at exit: what its buffer still holds goes
        # to /dev/null, not to a second error (the Python docs' advice for a broken pipe).
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        # isatty, fileno, encoding...: what rich and click ask of a stream.
        return getattr(self._stream, name)


def steady_streams() -> None:
    """Put sys.stdout and sys.stderr in a SteadyStream each (once; idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            # Started with the descriptor closed (`csload sync --json >&-`): the report went
            # to None.write, "a bug in csload", exit 1, after every run had committed (QA,
            # 2026-12-08). It goes nowhere instead.
            stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process
        if not isinstance(stream, SteadyStream):
            setattr(sys, name, SteadyStream(stream))


def writes_utf8(stream: object) -> bool:
    """Whether `stream` encodes as UTF-8 (else JSON is written as ASCII, with escapes)."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return encoding in ("utf8", "utf8sig")
