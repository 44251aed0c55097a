"""A stored HTTP message (head + body bytes, maybe cut by the capture limit) taken apart for display.

Rules:
- The head is parsed by the engine's `parse_stored_head`; header fields stay an ordered list of
  pairs, as they were on the wire.
- A chunked body is de-chunked. A body cut by the capture limit yields the chunks read so far and
  says so (`complete` False); a chunk stream that does not parse is shown as it was stored.
- `Content-Encoding` gzip/deflate is undone for viewing (never for replay or download), within
  `MAX_DECODED` bytes so a compression bomb cannot blow up the inspector.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from agentapi.engine.http1 import StoredHead, parse_stored_head

from . import content_type

MAX_DECODED = 8 * 1024 * 1024


@dataclass(slots=True)
class Message:
    head: StoredHead
    head_bytes: bytes
    # The body as stored (after the head), framing included.
    wire_body: bytes
    # The body with transfer framing removed.
    body: bytes
    # The body with content coding removed, when that worked; else equal to `body`.
    decoded_body: bytes
    chunked: bool = False
    content_encoding: str = ""
    decode_note: str = ""
    notes: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.head.headers:
            if key.lower() == lower:
                return value
        return None

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").strip()

    @property
    def mime_type(self) -> str:
        return content_type.mime_type(self.content_type)

    @property
    def charset(self) -> str:
        return content_type.charset(self.content_type)


def parse_message(raw: bytes, *, response: bool) -> Message:
    head = parse_stored_head(raw, response=response)
    head_bytes = raw[: head.body_offset]
    wire_body = raw[head.body_offset :]
    message = Message(head=head, head_bytes=head_bytes, wire_body=wire_body, body=wire_body, decoded_body=wire_body)
    transfer = (message.header("transfer-encoding") or "").lower()
    if "chunked" in transfer:
        message.chunked = True
        body, complete = dechunk(wire_body)
        if body is None:
            message.notes.append("the chunked framing did not parse: showing the body as stored")
        else:
            message.body = message.decoded_body = body
            if not complete:
                message.notes.append("the chunked body was cut by the capture limit")
    encoding = (message.header("content-encoding") or "").strip().lower()
    if encoding and encoding != "identity":
        message.content_encoding = encoding
        decoded, note = decode_content(message.body, encoding)
        message.decode_note = note
        if decoded is not None:
            message.decoded_body = decoded
    return message


def dechunk(data: bytes) -> tuple[bytes | None, bool]:
    """(body, complete); body is None when the framing is not chunked framing at all."""
    parts: list[bytes] = []
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return b"".join(parts), False
        size_text = data[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return None, False
        pos = line_end + 2
        if size == 0:
            return b"".join(parts), True
        chunk = data[pos : pos + size]
        parts.append(chunk)
        if len(chunk) < size:
            return b"".join(parts), False
        pos += size + 2


def decode_content(body: bytes, encoding: str) -> tuple[bytes | None, str]:
    """Undo gzip/deflate for display; (None, why) when it cannot be done."""
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        return None, f"content encoding {encoding!r} is shown as stored"
    try:
        decompressor = zlib.decompressobj(wbits)
        out = decompressor.decompress(body, MAX_DECODED)
    except zlib.error:
        if encoding == "deflate":
            try:  # raw deflate without the zlib wrapper, as some servers send it
                out = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, MAX_DECODED)
            except zlib.error as error:
                return None, f"could not undo {encoding}: {error}"
        else:
            return None, f"could not undo {encoding}"
    if len(out) >= MAX_DECODED:
        return out, f"decoded {encoding} body shown up to {MAX_DECODED} bytes"
    return out, f"decoded from {encoding} ({len(body)} bytes on the wire)"
