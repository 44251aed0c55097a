"""A stored HTTP message (head + body bytes, maybe cut by the capture limit) taken apart for display.

Rules:
- The head is parsed by the engine's `parse_stored_head`; header fields stay an ordered list of
  pairs, as they were on the wire. `headers` is their text for showing, made by
  header_text (UTF-8, `\\xNN` for bytes that are not).
- A chunked body is de-chunked. A body cut by the capture limit yields the chunks read so far and
  says so (`complete` False); a chunk stream that does not parse is shown as it was stored.
- `Content-Encoding` (gzip, deflate, br, zstd, stacked) is undone for viewing (never for replay or
  download) by content_coding, within `AGENT_DECODED_BODY_LIMIT` bytes so a
  compression bomb cannot blow up a reader: past it the decoded body is cut and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from agentapi.engine.http1 import StoredHead, parse_stored_head

from . import content_coding, content_type
from .header_text import display_fields, disposition_filename


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
    # Header fields as text for showing (see header_text), in wire order.
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False
    content_encoding: str = ""
    # What undoing the content coding gave (None: no coding named, or no body).
    coding: content_coding.Decoded | None = None
    notes: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
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

    @property
    def decoded(self) -> bool:
        """Whether `decoded_body` is `body` with a content coding undone."""
        return self.coding is not None and self.coding.decoded

    @property
    def decoded_cut(self) -> bool:
        return self.coding is not None and self.coding.cut

    @property
    def filename(self) -> str | None:
        """The file name Content-Disposition gives (RFC 6266, `filename*` first), if any."""
        disposition = self.header("content-disposition")
        return disposition_filename(disposition) if disposition else None


def parse_message(raw: bytes, *, response: bool, decoded_limit: int | None = None) -> Message:
    head = parse_stored_head(raw, response=response)
    head_bytes = raw[: head.body_offset]
    wire_body = raw[head.body_offset :]
    message = Message(
        head=head,
        head_bytes=head_bytes,
        wire_body=wire_body,
        body=wire_body,
        decoded_body=wire_body,
        headers=display_fields(head.raw_headers),
    )
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
    encoding = (message.header("content-encoding") or "").strip()
    if content_coding.parse_codings(encoding):
        message.content_encoding = encoding.lower()
        limit = settings.AGENT_DECODED_BODY_LIMIT if decoded_limit is None else decoded_limit
        message.coding = content_coding.decode(message.body, encoding, limit=limit)
        message.decoded_body = message.coding.data
        message.notes += message.coding.notes
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
