"""Content codings undone for display: each coding, stacks, cut streams, garbage and bombs."""

from __future__ import annotations

import gzip
import random
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from agentapi.captures.content_coding import decode, parse_codings

JSON = '{"name": "André", "items": [1, 2, 3]}'.encode() * 20
MIB = 1024 * 1024
GIB = 1024 * MIB


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize("coding", list(ENCODERS))
def test_each_coding_is_undone(coding: str) -> None:
    result = decode(ENCODERS[coding](JSON), coding, limit=MIB)
    assert result.data == JSON
    assert result.codings == (coding,)
    assert (result.cut, result.ended_early, result.error) == (False, False, "")
    assert result.notes == [f"decoded from {coding}"]


def test_raw_deflate_without_the_zlib_wrapper_is_undone_too() -> None:
    assert decode(raw_deflate(JSON), "deflate", limit=MIB).data == JSON


def test_coding_names_are_case_insensitive_and_identity_is_skipped() -> None:
    assert parse_codings(" GZip , identity,, BR ") == ("gzip", "br")
    assert decode(JSON, "identity", limit=MIB).data == JSON
    assert decode(JSON, "identity", limit=MIB).notes == []


def test_stacked_codings_are_undone_last_applied_first() -> None:
    body = brotli.compress(gzip.compress(JSON))  # gzip first, then br
    result = decode(body, "gzip, br", limit=MIB)
    assert result.data == JSON
    assert result.codings == ("gzip", "br")
    body = gzip.compress(zstandard.ZstdCompressor().compress(raw_deflate(JSON)))
    assert decode(body, "deflate, zstd, gzip", limit=MIB).data == JSON


def test_several_gzip_members_and_zstd_frames_are_one_body() -> None:
    assert decode(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", limit=MIB).data == b"abcd"
    frame = zstandard.ZstdCompressor().compress
    assert decode(frame(b"ab") + frame(b"cd"), "zstd", limit=MIB).data == b"abcd"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd"])
def test_a_stream_cut_by_the_capture_limit_shows_what_it_decodes_to(coding: str) -> None:
    text = random.Random(7).randbytes(600_000)  # incompressible: output comes block by block
    body = ENCODERS[coding](text)
    result = decode(body[: len(body) // 2], coding, limit=MIB)
    assert result.ended_early
    assert not result.error
    assert text.startswith(result.data)
    assert any("ends early" in note for note in result.notes)


def test_a_cut_brotli_stream_is_flagged_not_an_error() -> None:
    text = random.Random(7).randbytes(600_000)
    body = brotli.compress(text)
    result = decode(body[: len(body) // 2], "br", limit=MIB)
    assert result.ended_early and not result.error
    assert result.data and text.startswith(result.data)


@pytest.mark.parametrize("size", [96 * 1024 + 1, 218_890, 3 * MIB])
def test_a_whole_brotli_body_of_any_size_decodes_whole(size: int) -> None:
    # Brotli says it can take more input while decoded bytes still wait behind the output limit:
    # a body of more than one output step must not be read as one that ends early.
    text = (b'{"id": %d, "name": "J\xc3\xbcrgen", "tags": ["a", "b"]}\n' * (size // 40 + 1))[:size]
    result = decode(brotli.compress(text), "br", limit=8 * MIB)
    assert not result.ended_early and not result.error
    assert result.data == text


def test_text_that_brotli_reads_as_nothing_is_not_brotli() -> None:
    # Brotli has no magic number: b"plain text" is a valid start of a stream that never gives a byte.
    result = decode(b"plain text", "br", limit=MIB)
    assert result.data == b"plain text"
    assert result.error.startswith("could not undo br: it decodes to nothing")


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_garbage_is_shown_as_stored_with_the_reason(coding: str) -> None:
    result = decode(b"this is not compressed", coding, limit=MIB)
    assert result.data == b"this is not compressed"
    assert result.error.startswith(f"could not undo {coding}")
    assert result.notes[0].endswith("the body is shown as stored")


def test_an_unknown_coding_leaves_the_body_alone() -> None:
    result = decode(b"\x1f\x9d...", "compress", limit=MIB)
    assert result.data == b"\x1f\x9d..."
    assert result.error == "content coding 'compress' is not known"


def test_an_empty_body_has_nothing_to_undo() -> None:
    result = decode(b"", "gzip", limit=MIB)
    assert (result.data, result.notes) == (b"", [])


# --- bombs: 1 GiB of zeros, compressed without ever holding 1 GiB ----------------------------------
def gzip_bomb() -> bytes:
    """A valid gzip member of 1 GiB of zeros, built from one repeated fully-flushed deflate block."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(bytes(MIB), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + block * 1024 + end + struct.pack("<II", crc, GIB & 0xFFFFFFFF)


def brotli_bomb() -> bytes:
    compressor = brotli.Compressor(quality=1)
    chunk = bytes(MIB)
    return b"".join([compressor.process(chunk) for _ in range(1024)] + [compressor.finish()])


def zstd_bomb() -> bytes:
    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=GIB)
    chunk = bytes(MIB)
    return b"".join([compressor.compress(chunk) for _ in range(1024)] + [compressor.flush()])


def test_the_gzip_bomb_is_a_real_gigabyte() -> None:
    # Checked once, streaming, so the cut below is a cut of something big.
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    pending = gzip_bomb()
    while pending and not decompressor.eof:
        total += len(decompressor.decompress(pending, 64 * MIB))
        pending = decompressor.unconsumed_tail
    assert (total, decompressor.eof) == (GIB, True)


@pytest.mark.parametrize(
    ("coding", "make"),
    [("gzip", gzip_bomb), ("br", brotli_bomb), ("zstd", zstd_bomb), ("gzip, br", None)],
)
def test_a_bomb_is_cut_at_the_limit_without_expanding_in_memory(coding: str, make: Callable[[], bytes] | None) -> None:
    body = make() if make is not None else brotli.compress(gzip_bomb(), quality=1)
    limit = 4 * MIB
    tracemalloc.start()
    try:
        result = decode(body, coding, limit=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.data) == limit
    assert result.data == bytes(limit)
    assert result.cut
    assert "decoded body cut at 4194304 bytes" in result.notes
    # The output itself, a working copy and one step: never anywhere near the 1 GiB.
    assert peak < 4 * limit + len(body) * 3
