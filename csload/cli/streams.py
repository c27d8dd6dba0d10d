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
            except OSError:
                self._lose()
        return len(text)

    def _write_escaped(self, text: str) -> int:
        encoding = getattr(self._stream, "encoding", None) or "ascii"
        try:
            self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        except (OSError, UnicodeError):
            self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError:
                self._lose()

    def _lose(self) -> None:
        self.lost = True
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
        if stream is not None and not isinstance(stream, SteadyStream):
            setattr(sys, name, SteadyStream(stream))


def writes_utf8(stream: object) -> bool:
    """Whether `stream` encodes as UTF-8 (else JSON is written as ASCII, with escapes)."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return encoding in ("utf8", "utf8sig")
