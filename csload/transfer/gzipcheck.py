"""Checking that a part's bytes are a whole gzip stream, without decompressing to anywhere.

Its own module (no aiohttp): the loader uses `gzip_problem` on its error path, and `csload
status` / `csload.connect` import the loader without needing an HTTP client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

try:
    # ISA-L's inflate, same interface as zlib's: the check below inflates every downloaded
    # byte, and it is ~2.4x faster than zlib at that (measured on export-like CSV), CPU the
    # DuckDB load needs on small machines.
    from isal import isal_zlib as inflate_lib
except ImportError:  # a platform with no isal wheel: zlib does the same, slower
    import zlib as inflate_lib  # type: ignore[no-redef]

# What a corrupt stream raises (isal's own error class is not a zlib.error).
InflateError = cast(type[Exception], inflate_lib.error)

GZIP_MAGIC = b"\x1f\x8b"
# Decompressed output per inflate call: bounds memory however well a chunk compresses.
_INFLATE_STEP = 1 << 20


class CorruptStream(Exception):
    """The body is not a complete gzip stream (internal; becomes IncompleteDownload)."""


class GzipVerifier:
    """Checks, chunk by chunk, that a body is either not gzip or a complete gzip stream.

    Concatenated members are accepted (each must start with the magic bytes), as is zero
    padding after the last member, like Python's gzip module and the gzip tool do.
    """

    def __init__(self, inflate: bool = True) -> None:
        # inflate=False: only tell gzip from not (the magic bytes); the stream is not checked.
        self._check = inflate
        self._head = b""
        self.is_gzip: bool | None = None  # None until two bytes were seen
        self._inflater: Any = None
        # Bytes after a member's end that may start the next member.
        self._between = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.is_gzip is None:
            self._head += chunk
            if len(self._head) < 2:
                return
            self.is_gzip = self._head.startswith(GZIP_MAGIC)
            chunk, self._head = self._head, b""
            if self.is_gzip:
                self._between = b""
        if self.is_gzip and self._check:
            self._inflate(chunk)

    def finish(self) -> bool:
        """Whether the body was gzip; raises CorruptStream if the gzip stream ended early."""
        if self.is_gzip is None:
            self.is_gzip = False
            return False
        if not self.is_gzip:
            return False
        if not self._check:
            return True
        if self._inflater is not None:
            try:
                self._inflater.flush()
            except InflateError as exc:
                raise CorruptStream(f"the gzip stream is corrupt ({exc})") from None
            if not self._inflater.eof:
                raise CorruptStream("the gzip stream ends early (truncated)")
            self._inflater = None
        if self._between.strip(b"\0"):
            raise CorruptStream("data after the end of the gzip stream is not gzip")
        return True

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._inflater is None:
                data = self._between + data
                self._between = b""
                data = data.lstrip(b"\0")
                if len(data) < 2:
                    self._between = data
                    return
                if not data.startswith(GZIP_MAGIC):
                    raise CorruptStream("data after the end of the gzip stream is not gzip")
                # 47 = 32 + 15: accept a gzip or zlib header, full window.
                self._inflater = inflate_lib.decompressobj(wbits=47)
            inflater = self._inflater
            try:
                while True:
                    out = inflater.decompress(data, _INFLATE_STEP)
                    data = inflater.unconsumed_tail
                    if inflater.eof or (not data and len(out) < _INFLATE_STEP):
                        break
            except InflateError as exc:
                raise CorruptStream(f"the gzip stream is corrupt ({exc})") from None
            if not inflater.eof:
                return
            data = inflater.unused_data
            self._inflater = None


def gzip_problem(path: Path) -> str | None:
    """What is wrong with the gzip stream in the file at `path`, or None if it is whole (or
    the file is not gzip). Blocking: inflates the whole file."""
    verifier = GzipVerifier()
    try:
        with path.open("rb") as fh:
            while verifier.is_gzip is not False and (chunk := fh.read(_INFLATE_STEP)):
                verifier.feed(chunk)
        verifier.finish()
    except CorruptStream as exc:
        return str(exc)
    return None
