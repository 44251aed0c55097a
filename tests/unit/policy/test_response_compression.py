"""The streaming encoders and the rewritten response head of response_compression.py: every coding
decodes back to the body with independent decoders, each chunk is decodable as soon as it is
compressed, and the head says what the body has become (RFC 9110)."""

from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from agentapi.captures.content_coding import decode
from agentapi.engine.policy.response_compression import (
    CODINGS,
    LzwEncoder,
    compressed_head,
    encoder,
    weak_etag,
)

BODY = b"".join(b"line %d of a compressible body, said again and again\n" % i for i in range(4000)) + os.urandom(5000)


def compress_in_chunks(coding: str, body: bytes, size: int) -> bytes:
    enc = encoder(coding)
    parts = [enc.compress(body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + enc.flush()


def gzip_dc(data: bytes) -> bytes:
    # gzip's own decoder reads Unix compress (.Z) streams too: an independent check of our LZW.
    return subprocess.run(["gzip", "-dc"], input=data, capture_output=True, check=True).stdout


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd"])
@pytest.mark.parametrize("chunk", [1, 1000, 65536, len(BODY)])
def test_each_coding_decodes_back_to_the_body_through_the_capture_decoders(coding: str, chunk: int) -> None:
    body = BODY[:3000] if chunk == 1 else BODY  # a flush per byte is slow and big: a short body shows it
    encoded = compress_in_chunks(coding, body, chunk)
    decoded = decode(encoded, coding, limit=len(body) + 1)
    assert decoded.error == ""
    assert not decoded.ended_early
    assert decoded.data == body


@pytest.mark.parametrize("chunk", [1, 1000, 65536, len(BODY)])
def test_brotli_decodes_back_to_the_body_through_the_brotli_library(chunk: int) -> None:
    # The brotli library's own decoder: the capture decoder stops early on bodies over about 96 KiB.
    body = BODY[:3000] if chunk == 1 else BODY
    assert brotli.decompress(compress_in_chunks("br", body, chunk)) == body


@pytest.mark.parametrize("chunk", [1, 7, 4096, len(BODY)])
def test_the_compress_coding_decodes_back_to_the_body_with_gzip(chunk: int) -> None:
    body = BODY[:3000] if chunk == 1 else BODY
    assert gzip_dc(compress_in_chunks("compress", body, chunk)) == body


@pytest.mark.parametrize("max_bits", [10, 12, 16])
def test_lzw_streams_that_fill_their_table_and_clear_it_still_decode(max_bits: int) -> None:
    body = os.urandom(20000) + b"abcabcabd" * 20000 + bytes(range(256)) * 100
    enc = LzwEncoder(max_bits)
    encoded = b"".join(enc.compress(body[i : i + 3000]) for i in range(0, len(body), 3000)) + enc.flush()
    assert encoded[:3] == bytes([0x1F, 0x9D, 0x80 | max_bits])
    assert gzip_dc(encoded) == body


def test_each_chunk_is_decodable_before_the_stream_ends() -> None:
    chunks = [b'data: {"n": %d}\n\n' % i for i in range(5)]
    gzip_in = zlib.decompressobj(31)
    deflate_in = zlib.decompressobj(15)
    br_in = brotli.Decompressor()
    zstd_in = zstandard.ZstdDecompressor().decompressobj()
    decoders: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip_in.decompress,
        "deflate": deflate_in.decompress,
        "br": br_in.process,
        "zstd": zstd_in.decompress,
    }
    encoders = {coding: encoder(coding) for coding in decoders}
    for chunk in chunks:
        for coding, enc in encoders.items():
            assert decoders[coding](enc.compress(chunk)) == chunk, coding


def test_an_empty_chunk_gives_nothing_and_a_body_of_nothing_still_ends_its_stream() -> None:
    for coding in CODINGS:
        enc = encoder(coding)
        assert enc.compress(b"") == b""
        ending = enc.flush()
        if coding == "compress":
            assert gzip_dc(ending) == b""
        else:
            assert decode(ending, coding, limit=10).data == b""


def test_an_unknown_coding_has_no_encoder() -> None:
    with pytest.raises(ValueError, match="unknown content coding 'lzma'"):
        encoder("lzma")


def test_the_head_loses_its_length_and_gains_the_coding_vary_and_chunked_framing() -> None:
    head = compressed_head(
        [
            ("Content-Type", "text/html"),
            ("Content-Length", "12345"),
            ("ETag", '"v1"'),
            ("Accept-Ranges", "bytes"),
            ("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
            ("X-Kept", "yes"),
        ],
        "gzip",
        client_version="1.1",
    )
    assert head.chunked
    assert not head.close
    assert head.headers == [
        ("Content-Type", "text/html"),
        ("ETag", 'W/"v1"'),
        ("X-Kept", "yes"),
        ("Content-Encoding", "gzip"),
        ("Vary", "Accept-Encoding"),
        ("Transfer-Encoding", "chunked"),
    ]


def test_an_http_1_0_client_gets_a_body_that_ends_with_the_connection() -> None:
    head = compressed_head(
        [("Content-Length", "10"), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5")],
        "br",
        client_version="1.0",
    )
    assert not head.chunked
    assert head.close
    assert head.headers == [
        ("Keep-Alive", "timeout=5"),
        ("Content-Encoding", "br"),
        ("Vary", "Accept-Encoding"),
        ("Connection", "close"),
    ]


def test_an_existing_vary_gains_accept_encoding_once() -> None:
    head = compressed_head([("Vary", "Origin"), ("Vary", "Cookie")], "gzip", client_version="1.1")
    assert [value for name, value in head.headers if name == "Vary"] == ["Origin, Accept-Encoding", "Cookie"]
    already = compressed_head([("vary", "accept-encoding, Origin")], "gzip", client_version="1.1")
    assert [value for name, value in already.headers if name.lower() == "vary"] == ["accept-encoding, Origin"]
    star = compressed_head([("Vary", "*")], "gzip", client_version="1.1")
    assert [value for name, value in star.headers if name == "Vary"] == ["*"]


def test_the_services_framing_and_identity_coding_are_replaced() -> None:
    head = compressed_head(
        [("Transfer-Encoding", "chunked"), ("Content-Encoding", "identity")], "zstd", client_version="1.1"
    )
    assert head.headers == [
        ("Content-Encoding", "zstd"),
        ("Vary", "Accept-Encoding"),
        ("Transfer-Encoding", "chunked"),
    ]


def test_only_a_strong_etag_is_weakened() -> None:
    assert weak_etag('"abc"') == 'W/"abc"'
    assert weak_etag('W/"abc"') == 'W/"abc"'
    assert weak_etag("not-an-etag") == "not-an-etag"
