"""Content views: how a captured body is shown, pretty-printed on the server and picked by priority.

Each view says how well it fits a body (0: not at all) from its MIME type and first bytes, and renders
it to a small JSON-able dict with a `view` name the browser knows how to draw. The Summary tab shows
the best fit; `hexdump` (the Binary tab) fits everything. Parsing errors are data, not exceptions:
JSON and XML that do not parse come back with the text and the error's line, column and offset so the
browser can highlight the spot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from . import content_type
from .header_text import display_text, disposition_filename, parameter

# Bodies larger than this are shown cut, with a note (the download has everything).
MAX_TEXT = 512 * 1024
MAX_HEX = 64 * 1024
HEX_WIDTH = 8

IMAGE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "image/avif",
        "image/svg+xml",
    }
)
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)

Rendered = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes
    content_type: str = ""

    @property
    def mime_type(self) -> str:
        return content_type.mime_type(self.content_type)

    @property
    def charset(self) -> str:
        return content_type.charset(self.content_type)


@dataclass(frozen=True, slots=True)
class ContentView:
    name: str
    fit: Callable[[Body], int]
    render: Callable[[Body], Rendered]


def decode_text(body: Body) -> str | None:
    """The body as text, or None when it looks binary."""
    data = body.data[:MAX_TEXT]
    try:
        text = data.decode(body.charset)
    except LookupError:  # an unknown charset: try UTF-8
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data":
            return None
        text = data[: error.start].decode(body.charset)  # cut inside a character by a limit
    if "\x00" in text:
        return None
    return text


def _cut_note(body: Body) -> str:
    return f"showing the first {MAX_TEXT} of {len(body.data)} bytes" if len(body.data) > MAX_TEXT else ""


# --- JSON -------------------------------------------------------------------------------------
def _json_fit(body: Body) -> int:
    mime = body.mime_type
    if mime == "application/json" or mime.endswith("+json") or mime == "text/json":
        return 90
    start = body.data[:64].lstrip()
    if start[:1] in (b"{", b"[") and not mime.startswith(("text/html", "image/")):
        return 40
    return 0


def _json_render(body: Body) -> Rendered:
    text = decode_text(body)
    if text is None:
        return _hex_render(body)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return {
            "view": "json",
            "text": text,
            "error": {"message": error.msg, "line": error.lineno, "column": error.colno, "offset": error.pos},
            "note": _cut_note(body),
        }
    return {"view": "json", "text": json.dumps(value, indent=2, ensure_ascii=False), "note": _cut_note(body)}


# --- XML --------------------------------------------------------------------------------------
def _xml_fit(body: Body) -> int:
    mime = body.mime_type
    if mime in ("application/xml", "text/xml") or (mime.endswith("+xml") and mime != "image/svg+xml"):
        return 80
    if body.data[:64].lstrip().startswith(b"<?xml"):
        return 50
    return 0


def _offset_of(text: str, line: int, column: int) -> int:
    """Character offset of a 1-based line and 0-based column."""
    offset = 0
    for _ in range(line - 1):
        newline = text.find("\n", offset)
        if newline < 0:
            return len(text)
        offset = newline + 1
    return min(offset + column, len(text))


def _xml_render(body: Body) -> Rendered:
    text = decode_text(body)
    if text is None:
        return _hex_render(body)
    try:
        # expat does not fetch external entities and limits entity expansion (billion laughs).
        document = minidom.parseString(body.data[:MAX_TEXT])
    except ExpatError as error:
        line, column = error.lineno, error.offset
        return {
            "view": "xml",
            "text": text,
            "error": {
                "message": str(error).split(":", 1)[0],
                "line": line,
                "column": column + 1,
                "offset": _offset_of(text, line, column),
            },
            "note": _cut_note(body),
        }
    pretty = document.toprettyxml(indent="  ")
    pretty = "\n".join(line for line in pretty.splitlines() if line.strip())
    return {"view": "xml", "text": pretty, "note": _cut_note(body)}


# --- forms ------------------------------------------------------------------------------------
def _form_fit(body: Body) -> int:
    return 85 if body.mime_type == "application/x-www-form-urlencoded" else 0


def form_fields(data: bytes) -> list[tuple[str, str]]:
    return parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True)


def _form_render(body: Body) -> Rendered:
    return {"view": "form", "fields": [list(pair) for pair in form_fields(body.data[:MAX_TEXT])]}


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def _multipart_fit(body: Body) -> int:
    return 85 if body.mime_type == "multipart/form-data" and _BOUNDARY.search(body.content_type) else 0


def _multipart_render(body: Body) -> Rendered:
    return {"view": "multipart", "parts": multipart_parts(body.data, body.content_type)}


def multipart_parts(data: bytes, content_type: str) -> list[dict[str, Any]]:
    """The parts of a multipart/form-data body: name, filename, type, size, text value if any."""
    match = _BOUNDARY.search(content_type)
    if not match:
        return []
    delimiter = b"--" + match.group(1).encode("utf-8")
    parts = []
    for piece in data.split(delimiter)[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece.removeprefix(b"\r\n")
        head, separator, value = piece.partition(b"\r\n\r\n")
        if not separator:
            continue
        value = value.removesuffix(b"\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            key, _, field_value = line.partition(b":")
            headers[display_text(key).strip().lower()] = display_text(field_value).strip()
        disposition = headers.get("content-disposition", "")
        filename = disposition_filename(disposition)
        part: dict[str, Any] = {
            "name": parameter(disposition, "name") or "",
            "filename": filename,
            "content_type": headers.get("content-type", ""),
            "size": len(value),
        }
        text = decode_text(Body(value[:4096], "text/plain"))
        part["value"] = text if text is not None and filename is None else None
        parts.append(part)
    return parts


# --- images, text, hex ------------------------------------------------------------------------
def sniff_image(body: Body) -> str:
    if body.mime_type in IMAGE_TYPES:
        return body.mime_type
    for magic, mime in _IMAGE_MAGIC:
        if body.data.startswith(magic):
            return mime
    if body.data[:12].startswith(b"RIFF") and body.data[8:12] == b"WEBP":
        return "image/webp"
    return ""


def _image_fit(body: Body) -> int:
    return 95 if sniff_image(body) else 0


def _image_render(body: Body) -> Rendered:
    # The browser loads the bytes from the body endpoint; nothing is inlined here.
    return {"view": "image", "mime_type": sniff_image(body)}


def _text_fit(body: Body) -> int:
    return 10 if decode_text(Body(body.data[:4096], body.content_type)) is not None else 0


def _text_render(body: Body) -> Rendered:
    text = decode_text(body)
    if text is None:
        return _hex_render(body)
    return {"view": "text", "text": text, "note": _cut_note(body)}


def hexdump(data: bytes, width: int = HEX_WIDTH) -> str:
    """`offset  hex bytes  ascii`, `width` bytes a line."""
    lines = []
    for offset in range(0, len(data), width):
        row = data[offset : offset + width]
        hex_part = " ".join(f"{byte:02x}" for byte in row).ljust(width * 3 - 1)
        ascii_part = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in row)
        lines.append(f"{offset:08x}  {hex_part}  {ascii_part}")
    return "\n".join(lines)


def _hex_render(body: Body) -> Rendered:
    note = f"showing the first {MAX_HEX} of {len(body.data)} bytes" if len(body.data) > MAX_HEX else ""
    return {"view": "hex", "text": hexdump(body.data[:MAX_HEX]), "note": note}


VIEWS: tuple[ContentView, ...] = (
    ContentView("image", _image_fit, _image_render),
    ContentView("json", _json_fit, _json_render),
    ContentView("form", _form_fit, _form_render),
    ContentView("multipart", _multipart_fit, _multipart_render),
    ContentView("xml", _xml_fit, _xml_render),
    ContentView("text", _text_fit, _text_render),
    ContentView("hex", lambda body: 1, _hex_render),
)


def best_view(body: Body) -> ContentView:
    return max(VIEWS, key=lambda view: view.fit(body))


def render_best(body: Body) -> Rendered:
    if not body.data:
        return {"view": "empty"}
    return best_view(body).render(body)


def render_hex(body: Body) -> Rendered:
    return _hex_render(body)
