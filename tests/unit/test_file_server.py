"""The built-in file server in-process (file_server.py) on a loopback socket: answers, keep-alive
and pipelining, sendfile bodies, ranges, HEAD, 304, 405, HTTP/1.0 and closing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentapi.engine.file_lookup import SMALL_FILE
from agentapi.engine.file_server import FileServer

BIG = bytes(range(256)) * (SMALL_FILE * 40 // 256 + 1)  # ~2.6 MB: sent with sendfile


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[FileServer]:
    (tmp_path / "hello.txt").write_bytes(b"hello, world\n")
    (tmp_path / "big.bin").write_bytes(BIG)
    (tmp_path / "docs").mkdir()
    running = await FileServer.start(str(tmp_path))
    yield running
    await running.close()


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    length = 0 if head_only or status == 304 else int(headers.get("content-length", "0"))
    return Response(status, headers, await reader.readexactly(length))


async def exchange(server: FileServer, request: bytes, *, head_only: bool = False) -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        return await read_response(reader, head_only=head_only)
    finally:
        writer.close()


def get(path: str, *fields: str, method: str = "GET") -> bytes:
    extra = "".join(f"{field}\r\n" for field in fields)
    return f"{method} {path} HTTP/1.1\r\nHost: files\r\n{extra}\r\n".encode()


async def test_a_file_comes_with_its_type_length_and_validators(server: FileServer) -> None:
    response = await exchange(server, get("/hello.txt"))
    assert (response.status, response.body) == (200, b"hello, world\n")
    headers = response.headers
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-length"] == "13"
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"].startswith('"') and headers["last-modified"].endswith(" GMT")
    assert headers["date"].endswith(" GMT")
    assert "connection" not in headers and "server" not in headers


async def test_pipelined_requests_are_answered_in_order_on_one_connection(server: FileServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(get("/hello.txt") + get("/missing") + get("/docs") + get("/hello.txt", "Range: bytes=0-4"))
        answers = [await read_response(reader) for _ in range(4)]
    finally:
        writer.close()
    assert [answer.status for answer in answers] == [200, 404, 301, 206]
    assert answers[2].headers["location"] == "/docs/"
    assert answers[3].body == b"hello"


async def test_a_large_file_is_sent_whole_and_in_ranges(server: FileServer) -> None:
    whole = await exchange(server, get("/big.bin"))
    assert (whole.status, whole.headers["content-type"], len(whole.body)) == (200, "application/octet-stream", len(BIG))
    assert whole.body == BIG
    middle = await exchange(server, get("/big.bin", "Range: bytes=1000000-1999999"))
    assert (middle.status, middle.headers["content-range"]) == (206, f"bytes 1000000-1999999/{len(BIG)}")
    assert middle.body == BIG[1_000_000:2_000_000]
    tail = await exchange(server, get("/big.bin", "Range: bytes=-100"))
    assert tail.body == BIG[-100:]


async def test_head_sends_gets_head_without_a_body(server: FileServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(get("/big.bin", method="HEAD") + get("/hello.txt"))
        head = await read_response(reader, head_only=True)
        after = await read_response(reader)  # nothing of big.bin came before it
    finally:
        writer.close()
    assert (head.status, head.headers["content-length"], head.body) == (200, str(len(BIG)), b"")
    assert after.body == b"hello, world\n"


async def test_a_matching_etag_is_304_and_a_range_past_the_end_416(server: FileServer) -> None:
    etag = (await exchange(server, get("/hello.txt"))).headers["etag"]
    not_modified = await exchange(server, get("/hello.txt", f"If-None-Match: {etag}"))
    assert (not_modified.status, not_modified.headers["etag"]) == (304, etag)
    assert "content-length" not in not_modified.headers
    past = await exchange(server, get("/hello.txt", "Range: bytes=100-"))
    assert (past.status, past.headers["content-range"]) == (416, "bytes */13")


async def test_other_methods_are_405_and_the_connection_stays_usable(server: FileServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"POST /hello.txt HTTP/1.1\r\nHost: f\r\nContent-Length: 5\r\n\r\nabcde" + get("/hello.txt"))
        refused = await read_response(reader)
        after = await read_response(reader)
    finally:
        writer.close()
    assert (refused.status, refused.headers["allow"]) == (405, "GET, HEAD")
    assert after.status == 200


async def test_http_10_and_bad_requests_close_the_connection(server: FileServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    response = await read_response(reader)
    assert (response.status, response.headers["connection"]) == (200, "close")
    assert await reader.read() == b""
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hello.txt HTTP/1.1\r\nBad Header\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 400
    assert await reader.read() == b""
    writer.close()


async def test_a_traversal_is_refused_over_the_wire(server: FileServer, tmp_path: Path) -> None:
    for target in ("/../", "/%2e%2e/", "/docs/..%2f..%2fetc/passwd", "/..\\"):
        assert (await exchange(server, get(target))).status == 403, target


async def test_closing_ends_connections_and_stops_listening(tmp_path: Path) -> None:
    running = await FileServer.start(str(tmp_path))
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    await running.close()
    assert await reader.read() == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", running.port)


async def test_a_gone_directory_cannot_be_served(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await FileServer.start(os.path.join(tmp_path, "gone"))
