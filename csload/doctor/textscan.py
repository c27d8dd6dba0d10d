"""Reading the text of a sampled part: CSV records with how each value was written, and where
the last complete record of a cut-off sample ends.

Python's csv module forgets whether a value was quoted, which is the very thing doctor reports
(minimal RFC 4180 quoting, or every string quoted as ClickHouse writes it), hence this scanner.
It follows RFC 4180 (`"` quotes, `""` inside quotes, `\\n` or `\\r\\n` ends a record outside
quotes) and stops at the first record that does not follow it: the loader trial then says
what the loader makes of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# One CSV value: quoted (group 1, with `""` for a quote) or bare (group 2).
_VALUE = re.compile(r'"((?:[^"]|"")*)"|([^,"\r\n]*)')
NULL = "\\N"


@dataclass(frozen=True, slots=True)
class Cell:
    value: str        # the value, quotes removed and `""` undone
    quoted: bool
    raw: str          # exactly as in the file

    @property
    def is_null(self) -> bool:
        return not self.quoted and self.raw == NULL


@dataclass(frozen=True, slots=True)
class Record:
    cells: tuple[Cell, ...]
    line: int         # the physical line (1-based) it starts on
    start: int        # offsets in the text: [start, end), line end included
    end: int

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.cells)


class NotCsv(ValueError):
    """A record the scanner cannot read as RFC 4180 (`line` names where it starts)."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"line {line}: {why}")
        self.line = line


def csv_records(text: str) -> Iterator[Record]:
    """The records of `text`, in order; `text` holds complete records only (a sample is cut
    with `csv_cut` first), the last one with or without its line end. Raises NotCsv at the
    first record that breaks RFC 4180."""
    pos, line, size = 0, 1, len(text)
    while pos < size:
        start, cells = pos, []
        while True:
            match = _VALUE.match(text, pos)
            assert match is not None   # the bare branch matches the empty string
            quoted = match.group(1) is not None
            value = match.group(1).replace('""', '"') if quoted else match.group(2)
            cells.append(Cell(value, quoted, match.group(0)))
            pos = match.end()
            if pos >= size:
                end = pos
                break
            char = text[pos]
            if char == ",":
                pos += 1
                continue
            if char == "\n" or text.startswith("\r\n", pos):
                end = pos + (1 if char == "\n" else 2)
                break
            raise NotCsv(line, f"unexpected {char!r} after a value (not RFC 4180 quoting)")
        yield Record(tuple(cells), line, start, end)
        line += text.count("\n", start, end)
        pos = end


def csv_cut(text: str) -> int:
    """Where the last complete CSV record of a cut-off `text` ends (0: none is complete).

    A line end is a record end when an even number of `"` precede it: quotes come in pairs in
    RFC 4180 (`""` inside a quoted value included), so an odd count means inside quotes."""
    pos = len(text)
    while True:
        pos = text.rfind("\n", 0, pos)
        if pos < 0:
            return 0
        if text.count('"', 0, pos) % 2 == 0:
            return pos + 1


def jsonl_cut(text: str) -> int:
    """Where the last complete JSONL line of a cut-off `text` ends (0: none is complete)."""
    return text.rfind("\n") + 1


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each non-blank line."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line
