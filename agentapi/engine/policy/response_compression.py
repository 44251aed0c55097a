"""Compressing a response body on its way to the client: one streaming encoder per content coding,
and the response head rewritten for the compressed body. compress-response chooses the coding
(actions/compress_response.py); the proxy applies it with these.

Encoders (`encoder(coding)`), each incremental with bounded memory:
- `gzip` (RFC 1952) and `deflate` (the zlib format, RFC 1950, as RFC 9110 8.4.1.2 defines the
  coding) through zlib at level 6 (Go's DefaultCompression, what ngrok's Go edge would use);
  `br` (RFC 7932) through the Brotli package at quality 4 with a 4 MiB window (a speed/ratio point
  for compressing on the fly); `zstd` (RFC 8878) at level 3 with its window kept within RFC 9659's
  8 MiB; `compress` (Unix compress: LZW, 0x1f 0x9d, block mode) in pure Python with codes of at
  most 12 bits, so its table stays at 4096 entries, and a CLEAR code when the table is full.
- `compress(chunk)` returns what decodes to every byte given so far: each chunk is flushed (zlib
  Z_SYNC_FLUSH, brotli flush, a zstd block end), so a streamed response (server-sent events, a
  long poll) is never held back. The one exception is `compress`, whose codes are not byte
  aligned: up to 7 bits of the last code wait for the next chunk or the end.
- `flush()` ends the stream (trailer, checksum); the encoder is then done. Empty chunks give b"".

The head (`compressed_head`), per RFC 9110 and ngrok's page for compress-response:
- `Content-Length` goes (the compressed size is not known before the body is sent), and so do
  fields that describe the bytes of the uncompressed content: `Content-MD5`, `Digest`,
  `Content-Digest`, `Repr-Digest` (RFC 9530: computed over the encoded content), and
  `Accept-Ranges` (ranges of an on-the-fly encoding cannot be served).
- `Content-Encoding` is set to the coding (an `identity` one is replaced).
- `Vary` gains `Accept-Encoding` (RFC 9110 12.5.5) unless it lists it already or is `*`.
- A strong `ETag` becomes weak (`"x"` -> `W/"x"`): the compressed bytes are a different
  representation, so a strong validator would lie (RFC 9110 8.8.1, 8.8.3).
- Framing: any `Transfer-Encoding` of the service's goes; an HTTP/1.1 client gets
  `Transfer-Encoding: chunked`; an HTTP/1.0 client (which knows no chunked coding) gets a body
  delimited by closing the connection (`Connection: close`, RFC 9112 6.3).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Protocol

import brotli
import zstandard

CODINGS = ("gzip", "deflate", "br", "zstd", "compress")
ZLIB_LEVEL = 6
BROTLI_QUALITY = 4
BROTLI_LGWIN = 22  # 4 MiB window
ZSTD_LEVEL = 3
ZSTD_MAX_WINDOW_LOG = 23  # 8 MiB, RFC 9659
LZW_MAX_BITS = 12

_DROPPED = frozenset(
    {"content-length", "transfer-encoding", "content-md5", "digest", "content-digest", "repr-digest", "accept-ranges"}
)


class Encoder(Protocol):
    """A streaming encoder for one body: `compress` each chunk, then `flush` once at the end."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def encoder(coding: str) -> Encoder:
    """A new encoder for `coding` (one of CODINGS, lower-case). Raises ValueError for any other."""
    if coding == "gzip":
        return _ZlibEncoder(wbits=31)
    if coding == "deflate":
        return _ZlibEncoder(wbits=15)
    if coding == "br":
        return _BrotliEncoder()
    if coding == "zstd":
        return _ZstdEncoder()
    if coding == "compress":
        return LzwEncoder()
    raise ValueError(f"unknown content coding {coding[:64]!r}")


class _ZlibEncoder:
    def __init__(self, *, wbits: int) -> None:
        self._zlib = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, wbits)

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def flush(self) -> bytes:
        return self._zlib.flush(zlib.Z_FINISH)


class _BrotliEncoder:
    def __init__(self) -> None:
        self._brotli = brotli.Compressor(quality=BROTLI_QUALITY, lgwin=BROTLI_LGWIN)

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._brotli.process(data) + self._brotli.flush()

    def flush(self) -> bytes:
        return self._brotli.finish()


class _ZstdEncoder:
    def __init__(self) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(ZSTD_LEVEL)
        if params.window_log > ZSTD_MAX_WINDOW_LOG:
            params = zstandard.ZstdCompressionParameters.from_level(ZSTD_LEVEL, window_log=ZSTD_MAX_WINDOW_LOG)
        self._zstd = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._zstd.compress(data) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def flush(self) -> bytes:
        return self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


class LzwEncoder:
    """The `compress` coding: Unix compress's LZW, as gzip's and ncompress's decoders read it.

    Format: 0x1f 0x9d, a flags byte (block mode | max bits), then codes packed least significant
    bit first. Codes start 9 bits wide; 256 is CLEAR; new strings take 257 up. The decoder widens
    its codes when its next free entry passes the current width's maximum, and then (as after a
    CLEAR) skips to the end of the current group of 8 codes: the encoder pads the same way, and
    follows the decoder's count of free entries (one behind its own) to know when.
    A chunk boundary ends the current string (its code is sent), so the chunk decodes at once;
    the entry that string would have made with the next byte is made when that byte comes.
    """

    _CLEAR = 256
    _FIRST = 257

    def __init__(self, max_bits: int = LZW_MAX_BITS) -> None:
        if not 10 <= max_bits <= 16:
            raise ValueError("max_bits must be 10 to 16")
        self._max_code = 1 << max_bits  # codes stay below this
        self._table: dict[int, int] = {}  # (prefix code << 8 | byte) -> code
        self._next = self._FIRST  # the encoder's next free code
        self._decoder_next = self._FIRST  # the decoder's, which it bumps one code later
        self._decoder_first = True  # the decoder makes no entry for the first code of the stream
        self._prefix = -1  # the code of the string being matched; -1: none
        self._pending = -1  # a code sent at a chunk end, waiting for the byte that makes its entry
        self._bits = 9
        self._codes_at_width = 0
        self._acc = 0
        self._acc_bits = 0
        self._out = bytearray(b"\x1f\x9d" + bytes([0x80 | max_bits]))

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        table = self._table
        prefix = self._prefix
        for byte in data:
            if prefix < 0:
                if self._pending >= 0:
                    self._add(self._pending << 8 | byte)
                    self._pending = -1
                prefix = byte
                continue
            key = prefix << 8 | byte
            code = table.get(key)
            if code is not None:
                prefix = code
                continue
            self._emit(prefix)
            self._add(key)
            prefix = byte
        self._prefix = -1
        if prefix >= 0:
            self._emit(prefix)
            self._pending = prefix
        return self._take()

    def flush(self) -> bytes:
        if self._acc_bits:
            self._out.append(self._acc & 0xFF)
            self._acc = self._acc_bits = 0
        return self._take()

    def _add(self, key: int) -> None:
        if self._next < self._max_code:
            self._table[key] = self._next
            self._next += 1
            return
        # The table is full: start a new one. The decoder sees CLEAR, skips to its group's end
        # and starts over at 9 bits; it will file one junk entry (at 256) with the next code.
        self._emit(self._CLEAR, clear=True)
        self._table.clear()
        self._next = self._FIRST
        self._decoder_next = self._FIRST - 1
        self._decoder_first = False

    def _emit(self, code: int, *, clear: bool = False) -> None:
        # The width the decoder reads this code at: it widens before reading when its next free
        # entry has passed the current width's last code (the last width takes every code).
        if self._decoder_next > self._width_max():
            self._pad_group()
            self._bits += 1
        self._acc |= code << self._acc_bits
        self._acc_bits += self._bits
        self._codes_at_width += 1
        while self._acc_bits >= 8:
            self._out.append(self._acc & 0xFF)
            self._acc >>= 8
            self._acc_bits -= 8
        if clear:
            self._pad_group()
            self._bits = 9
            return
        if self._decoder_first:
            self._decoder_first = False
        elif self._decoder_next < self._max_code:
            self._decoder_next += 1

    def _width_max(self) -> int:
        return self._max_code if (1 << self._bits) >= self._max_code else (1 << self._bits) - 1

    def _pad_group(self) -> None:
        # Zero bits up to the end of the group of 8 codes at the current width.
        pad = (-self._codes_at_width % 8) * self._bits
        self._codes_at_width = 0
        self._acc_bits += pad
        while self._acc_bits >= 8:
            self._out.append(self._acc & 0xFF)
            self._acc >>= 8
            self._acc_bits -= 8

    def _take(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out


@dataclass(frozen=True, slots=True)
class CompressedHead:
    """A response head rewritten for a compressed body. `chunked`: frame the body with the chunked
    coding (HTTP/1.1); otherwise the body ends when the connection closes (`close` is then true)."""

    headers: list[tuple[str, str]]
    chunked: bool
    close: bool


def compressed_head(headers: list[tuple[str, str]], coding: str, *, client_version: str) -> CompressedHead:
    """The response's header fields for a body compressed with `coding`, sent to a client speaking
    HTTP/`client_version` ("1.1", "1.0"). Field order and spelling are kept; see the module's rules."""
    vary_members = {
        member.strip().lower() for name, value in headers if name.lower() == "vary" for member in value.split(",")
    }
    vary_needed = not vary_members & {"*", "accept-encoding"}
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in _DROPPED or lower == "content-encoding":
            continue
        if lower == "connection" and client_version == "1.0":
            continue
        if lower == "vary" and vary_needed:
            value = f"{value}, Accept-Encoding" if value.strip() else "Accept-Encoding"
            vary_needed = False
        elif lower == "etag":
            value = weak_etag(value)
        out.append((name, value))
    out.append(("Content-Encoding", coding))
    if vary_needed:
        out.append(("Vary", "Accept-Encoding"))
    if client_version == "1.0":
        out.append(("Connection", "close"))
        return CompressedHead(out, chunked=False, close=True)
    out.append(("Transfer-Encoding", "chunked"))
    return CompressedHead(out, chunked=True, close=False)


def weak_etag(value: str) -> str:
    """A strong entity tag made weak (`"x"` -> `W/"x"`); a weak one, or anything that is not an
    entity tag, as it was."""
    stripped = value.strip()
    if stripped.startswith('"') and stripped.endswith('"') and len(stripped) >= 2:
        return "W/" + stripped
    return value
