"""HTTP/1.1 messages read straight off a socket, for tests that write their own bytes (pipelining,
odd targets, chunked uploads) and must read exactly what came back, in order.

Framing rules (RFC 9112 §6.3), the subset tests need: no body for HEAD, 1xx, 204 and 304; chunked
when Transfer-Encoding ends in chunked; else Content-Length; else (a response) read until close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Reader(Protocol):
    """What is read from: a socket's makefile("rb"), a server handler's rfile, a BytesIO."""

    def readline(self, size: int = ..., /) -> bytes: ...

    def read(self, size: int = ..., /) -> bytes: ...


@dataclass
class Message:
    """One request or response: its start line, header fields in order (bytes, as sent) and body."""

    start_line: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> bytes | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    @property
    def status(self) -> int:
        return int(self.start_line.split(b" ", 2)[1])

    def wants_close(self) -> bool:
        connection = (self.header("Connection") or b"").lower()
        return b"close" in [token.strip() for token in connection.split(b",")]


def read_head(reader: Reader) -> Message | None:
    """The start line and header fields, or None when the peer closed before sending any."""
    line = reader.readline(65536)
    if not line:
        return None
    message = Message(start_line=line.rstrip(b"\r\n"))
    while True:
        line = reader.readline(65536)
        if not line:
            raise ConnectionError("connection closed inside a message head")
        if line in (b"\r\n", b"\n"):
            return message
        name, _, value = line.rstrip(b"\r\n").partition(b":")
        message.headers.append((name, value.strip(b" \t")))


def read_body(reader: Reader, message: Message, *, until_close: bool) -> None:
    """Fills in message.body per its framing; `until_close` is for responses without a length."""
    encoding = (message.header("Transfer-Encoding") or b"").lower()
    if encoding.rstrip().endswith(b"chunked"):
        message.chunked = True
        parts = []
        while True:
            size_line = reader.readline(65536)
            if not size_line:
                raise ConnectionError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while reader.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields: not needed by any test
                break
            parts.append(_read_exactly(reader, size))
            reader.readline(65536)
        message.body = b"".join(parts)
    elif (length := message.header("Content-Length")) is not None:
        message.body = _read_exactly(reader, int(length))
    elif until_close:
        message.body = reader.read()


def read_response(reader: Reader, *, method: str = "GET") -> Message | None:
    """The next whole response on a connection (None if it closed first)."""
    response = read_head(reader)
    if response is None:
        return None
    status = response.status
    if method != "HEAD" and status >= 200 and status not in (204, 304):
        read_body(reader, response, until_close=True)
    return response


def read_request(reader: Reader) -> Message | None:
    """The next whole request on a connection (None if it closed first)."""
    request = read_head(reader)
    if request is not None:
        read_body(reader, request, until_close=False)
    return request


def _read_exactly(reader: Reader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ConnectionError(f"connection closed after {len(data)} of {size} body bytes")
    return data
