"""Content views: how a captured body is shown, pretty-printed on the server and picked by priority.

Each view says how well it fits a body (0: not at all) from its MIME type and first bytes, and renders
it to a small JSON-able dict with a `view` name the browser knows how to draw. The Summary tab shows
the best fit; `hexdump` (the Binary tab) fits everything. Parsing errors are data, not exceptions:
JSON and XML that do not parse come back with the text and the error's line, column and offset so the
browser can highlight the spot; their check reads the whole body, only the drawing is cut (syntax_views).
Multipart parts carry their index, so the browser can link each part's download.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from . import multipart, syntax_views
from .body_text import MAX_TEXT, Body, cut_note, decode_text

__all__ = [
    "MAX_TEXT",
    "Body",
    "ContentView",
    "best_view",
    "decode_text",
    "form_fields",
    "hexdump",
    "multipart_parts",
    "render_best",
    "render_hex",
    "sniff_image",
]

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
class ContentView:
    name: str
    fit: Callable[[Body], int]
    render: Callable[[Body], Rendered]


# --- JSON, XML, HTML (syntax_views) -----------------------------------------------------------
def _json_fit(body: Body) -> int:
    mime = body.mime_type
    if mime == "application/json" or mime.endswith("+json") or mime == "text/json":
        return 90
    start = body.data[:64].lstrip()
    if start[:1] in (b"{", b"[") and not mime.startswith(("text/html", "image/")):
        return 40
    return 0


def _xml_fit(body: Body) -> int:
    mime = body.mime_type
    if mime in ("application/xml", "text/xml") or (mime.endswith("+xml") and mime != "image/svg+xml"):
        return 80
    if body.data[:64].lstrip().startswith(b"<?xml"):
        return 50
    return 0


def _html_fit(body: Body) -> int:
    if body.mime_type == "text/html":
        return 70
    start = body.data[:64].lstrip().lower()
    return 45 if start.startswith((b"<!doctype html", b"<html")) else 0


def _json_render(body: Body) -> Rendered:
    return syntax_views.render_json(body, _hex_render)


def _xml_render(body: Body) -> Rendered:
    return syntax_views.render_xml(body, _hex_render)


def _html_render(body: Body) -> Rendered:
    return syntax_views.render_html(body, _hex_render)


# --- forms ------------------------------------------------------------------------------------
def _form_fit(body: Body) -> int:
    return 85 if body.mime_type == "application/x-www-form-urlencoded" else 0


def form_fields(data: bytes) -> list[tuple[str, str]]:
    return parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True)


def _form_render(body: Body) -> Rendered:
    return {"view": "form", "fields": [list(pair) for pair in form_fields(body.data[:MAX_TEXT])]}


def _multipart_fit(body: Body) -> int:
    return 85 if body.mime_type == "multipart/form-data" and multipart.boundary(body.content_type) else 0


def _multipart_render(body: Body) -> Rendered:
    return {"view": "multipart", "parts": multipart_parts(body.data, body.content_type)}


def multipart_parts(data: bytes, content_type: str) -> list[dict[str, Any]]:
    """The parts of a multipart/form-data body, in order: {index, name, filename (None: not a
    file), content_type, size (bytes captured), complete, value (the text of a field that is not a
    file, its first 4 KiB; else None)}."""
    rendered = []
    for index, part in enumerate(multipart.parse_parts(data, content_type)):
        text = decode_text(Body(data[part.start : min(part.end, part.start + 4096)], "text/plain"))
        rendered.append(
            {
                "index": index,
                "name": part.name,
                "filename": part.filename,
                "content_type": part.content_type,
                "size": part.size,
                "complete": part.complete,
                "value": text if text is not None and part.filename is None else None,
            }
        )
    return rendered


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
    return {"view": "text", "text": text, "note": cut_note(body)}


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
    ContentView("html", _html_fit, _html_render),
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
