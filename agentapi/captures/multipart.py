"""The parts of a multipart/form-data body (RFC 7578 over RFC 2046 5.1), kept as spans of the body.

Rules:
- The boundary comes from the Content-Type's `boundary` parameter (quoted or not). A delimiter is
  CRLF `--boundary` (the first may open the body without the CRLF); text before the first one is
  the preamble, `--boundary--` closes the body and the epilogue after it is ignored.
- Each part is its header lines, an empty line, then content up to the CRLF before the next
  delimiter. Header bytes are read as header_text shows them (UTF-8, `\\xNN` otherwise); the field
  name and file name come from Content-Disposition (RFC 6266 / RFC 8187 `filename*` first).
- A body cut by a limit gives the parts read so far; a last part with no delimiter after it is
  listed with the bytes there are and `complete` False: never a size it does not have.
- `start`/`end` are offsets of the content in the body: the download of part i serves exactly
  `body[start:end]`.
This is our own small parser rather than a library: the ones there are (multipart, python-multipart)
read a stream to its end and refuse a cut body, where the inspector must show what was captured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .header_text import display_text, disposition_filename, parameter

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^";\s]+))', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Part:
    """One part: `name` (the form field), `filename` (None when it is not a file), `content_type`
    (as sent, "" when none), `headers` (ordered pairs as text), `start`/`end` (byte offsets of its
    content in the body) and `complete` (False: the body was cut inside it)."""

    name: str
    filename: str | None
    content_type: str
    headers: tuple[tuple[str, str], ...]
    start: int
    end: int
    complete: bool = True

    @property
    def size(self) -> int:
        return self.end - self.start


def boundary(content_type: str) -> str | None:
    """The `boundary` parameter of a Content-Type value, or None."""
    match = _BOUNDARY.search(content_type)
    if not match:
        return None
    return match.group(1) or match.group(2)


def parse_parts(data: bytes, content_type: str) -> list[Part]:
    """The parts of `data` in order ([] when the Content-Type has no boundary)."""
    name = boundary(content_type)
    if not name:
        return []
    dash = b"--" + name.encode("utf-8")
    delimiter = b"\r\n" + dash
    # The first delimiter may open the body; later ones follow a CRLF.
    if data.startswith(dash):
        pos = len(dash)
    else:
        found = data.find(delimiter)
        if found < 0:
            return []
        pos = found + len(delimiter)
    parts: list[Part] = []
    while True:
        if data.startswith(b"--", pos):  # the close delimiter
            return parts
        line_end = data.find(b"\r\n", pos)  # transport padding after the delimiter, then CRLF
        if line_end < 0:
            return parts
        head_start = line_end + 2
        head_end = data.find(b"\r\n\r\n", head_start - 2)
        if head_end < 0:
            return parts  # cut inside the part's header lines: nothing to show of it
        head = data[head_start:head_end] if head_end >= head_start else b""
        content_start = head_end + 4
        next_delimiter = data.find(delimiter, content_start - 2)
        complete = next_delimiter >= 0
        content_end = next_delimiter if complete else len(data)
        parts.append(_part(head, max(content_start, 0), max(content_end, content_start), complete))
        if not complete:
            return parts
        pos = next_delimiter + len(delimiter)


def _part(head: bytes, start: int, end: int, complete: bool) -> Part:
    headers: list[tuple[str, str]] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        key, _, value = line.partition(b":")
        headers.append((display_text(key).strip(), display_text(value).strip()))
    lookup = {key.lower(): value for key, value in headers}
    disposition = lookup.get("content-disposition", "")
    return Part(
        name=parameter(disposition, "name") or "",
        filename=disposition_filename(disposition),
        content_type=lookup.get("content-type", ""),
        headers=tuple(headers),
        start=start,
        end=end,
        complete=complete,
    )
