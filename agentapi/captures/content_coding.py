"""Content codings undone, for showing a captured body: never for replay, downloads of raw bytes or the API.

Rules:
- Codings: `gzip` and `x-gzip` (several members in a row are one body), `deflate` (the zlib format
  RFC 9110 names, or raw deflate as some servers send it: told apart by the zlib header check),
  `br` (brotli), `zstd` (RFC 8878; windows over 8 MiB refused, as RFC 9659 allows HTTP decoders to).
  `identity` and empty list members are skipped; names are case-insensitive.
- `Content-Encoding: gzip, br` lists codings in the order they were applied, so they are undone in
  reverse: br first, then gzip.
- Output never exceeds `limit` bytes, and no more than about one step past it is ever held in
  memory: every decoder is incremental with an output bound (zlib `max_length`, brotli
  `output_buffer_limit`, zstd fed a few bytes at a time), so a decompression bomb costs `limit` bytes,
  and is flagged `cut`. Each stage of a stack is bounded the same way.
- A stream that stops before its end (a body cut by the capture limit) gives what it decodes to so
  far, flagged `ended_early` (for br, which has no magic number, nothing at all counts as not br). Data that
  is not what its coding says, or an unknown coding, gives `error` and the body as it was given
  (nothing half-decoded is passed off as the body).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import brotli
import zstandard

# RFC 9659: HTTP zstd encoders keep the window at or under 8 MiB, and decoders may refuse more.
ZSTD_MAX_WINDOW = 8 * 1024 * 1024
# Output asked of a decoder in one call (it may go past by at most one such step before the cut).
_STEP = 64 * 1024
# zstd is fed this many bytes a call: an RLE block of 4 bytes can stand for 128 KiB, so one call
# yields at most 2 MiB.
_ZSTD_FEED = 64

KNOWN = ("gzip", "x-gzip", "deflate", "br", "zstd")


class CodingError(Exception):
    """The data is not what its coding says (or the coding is unknown)."""


@dataclass(frozen=True, slots=True)
class Stage:
    data: bytes
    cut: bool = False
    ended_early: bool = False


@dataclass(frozen=True, slots=True)
class Decoded:
    # The body with every coding undone (up to `limit` bytes), or the body as given when `error`.
    data: bytes
    # The codings the header lists, in its order, lower-case, `identity` left out.
    codings: tuple[str, ...] = ()
    # Output stopped at `limit`: the rest was never expanded.
    cut: bool = False
    limit: int = 0
    # A coded stream ended before its end marker: `data` is what it decodes to so far.
    ended_early: bool = False
    error: str = ""

    @property
    def decoded(self) -> bool:
        """Whether `data` differs from the input because codings were undone."""
        return bool(self.codings) and not self.error

    @property
    def notes(self) -> list[str]:
        if not self.codings:
            return []
        named = ", ".join(self.codings)
        if self.error:
            return [f"{self.error}: the body is shown as stored"]
        notes = [f"decoded from {named}"]
        if self.ended_early:
            notes.append(f"the {named} stream ends early (the body was cut): showing what it decodes to so far")
        if self.cut:
            notes.append(f"decoded body cut at {self.limit} bytes")
        return notes


def parse_codings(header: str) -> tuple[str, ...]:
    """`Content-Encoding: gzip, BR` -> ("gzip", "br"); identity and empty members dropped."""
    codings = (part.strip().lower() for part in header.split(","))
    return tuple(coding for coding in codings if coding and coding != "identity")


def decode(body: bytes, content_encoding: str, *, limit: int) -> Decoded:
    """Undo the codings a Content-Encoding value lists, last applied first, within `limit` bytes."""
    codings = parse_codings(content_encoding)
    if not codings or not body:  # nothing to undo (a HEAD or 304 answer names a coding, sends no body)
        return Decoded(body, limit=limit)
    unknown = [coding for coding in codings if coding not in _DECODERS]
    if unknown:
        return Decoded(body, codings, limit=limit, error=f"content coding {unknown[0]!r} is not known")
    data, cut, ended_early = body, False, False
    for coding in reversed(codings):
        try:
            stage = _DECODERS[coding](data, limit)
        except CodingError as error:
            return Decoded(body, codings, limit=limit, error=f"could not undo {coding}: {error}")
        if coding == "br" and stage.ended_early and not stage.data:
            # Brotli has no magic number, so plain text can read as the start of a stream that
            # never gives a byte: show the body as stored rather than as nothing.
            why = "it decodes to nothing (not brotli data, or cut before its first block)"
            return Decoded(body, codings, limit=limit, error=f"could not undo br: {why}")
        data = stage.data
        # A cut inside the stack also ends the next stage's input early; say "cut", not both.
        cut = cut or stage.cut
        ended_early = (ended_early or stage.ended_early) and not cut
    return Decoded(data, codings, cut=cut, limit=limit, ended_early=ended_early)


# --- decoders: (data, limit) -> Stage -------------------------------------------------------
def _zlib(data: bytes, limit: int, wbits: int, *, members: bool = False) -> Stage:
    out = bytearray()
    pending = data
    decompressor = zlib.decompressobj(wbits)
    try:
        while True:
            # Ask for one byte more than room is left, to tell "exactly full" from "more to come".
            out += decompressor.decompress(pending, min(_STEP, limit + 1 - len(out)))
            if len(out) > limit:
                return Stage(bytes(out[:limit]), cut=True)
            if decompressor.eof:
                rest = decompressor.unused_data
                if members and rest[:2] == b"\x1f\x8b":  # another gzip member follows
                    decompressor, pending = zlib.decompressobj(wbits), rest
                    continue
                return Stage(bytes(out))
            pending = decompressor.unconsumed_tail
            if not pending:
                return Stage(bytes(out), ended_early=True)
    except zlib.error as error:
        raise CodingError(str(error).removeprefix("Error -3 while decompressing data: ")) from None


def _gzip(data: bytes, limit: int) -> Stage:
    return _zlib(data, limit, 16 + zlib.MAX_WBITS, members=True)


def _deflate(data: bytes, limit: int) -> Stage:
    # A zlib header: compression method 8 and a header checksum (RFC 1950); anything else is raw.
    zlib_wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return _zlib(data, limit, zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)


def _brotli(data: bytes, limit: int) -> Stage:
    out = bytearray()
    decompressor = brotli.Decompressor()
    try:
        # All input goes in with the first call; later calls drain it (empty input, as the API asks).
        chunk = decompressor.process(data, output_buffer_limit=_STEP)
        while True:
            out += chunk
            if len(out) > limit:
                return Stage(bytes(out[:limit]), cut=True)
            if decompressor.is_finished():
                return Stage(bytes(out))
            # can_accept_more_data() is also true while output waits behind output_buffer_limit, so
            # only a drain that gives nothing says the input ran out before the stream's end.
            if not chunk and decompressor.can_accept_more_data():
                return Stage(bytes(out), ended_early=True)
            chunk = decompressor.process(b"", output_buffer_limit=_STEP)
    except brotli.error as error:
        raise CodingError(str(error) or "not brotli data") from None


def _zstd(data: bytes, limit: int) -> Stage:
    out = bytearray()
    view = memoryview(data)
    context = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    try:
        while True:  # one frame a round (frames may follow each other)
            decompressor = context.decompressobj(write_size=_STEP)
            fed = 0
            while not decompressor.eof:
                if fed >= len(view):
                    return Stage(bytes(out), ended_early=True)
                piece = view[fed : fed + _ZSTD_FEED]
                fed += len(piece)
                out += decompressor.decompress(piece)
                if len(out) > limit:
                    return Stage(bytes(out[:limit]), cut=True)
            view = view[fed - len(decompressor.unused_data) :]
            if not _zstd_frame_start(view):  # the end, or trailing bytes that are no frame: ignored
                return Stage(bytes(out))
    except zstandard.ZstdError as error:
        raise CodingError(str(error)) from None


def _zstd_frame_start(view: memoryview) -> bool:
    magic = bytes(view[:4])
    # A zstd frame, or a skippable frame (0x184D2A50 to 0x184D2A5F, little-endian).
    return magic == b"\x28\xb5\x2f\xfd" or (
        len(magic) == 4 and magic[0] & 0xF0 == 0x50 and magic[1:] == b"\x2a\x4d\x18"
    )


_DECODERS: dict[str, Callable[[bytes, int], Stage]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
