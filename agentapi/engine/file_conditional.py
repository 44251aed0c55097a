"""Conditional and range requests for one file of the built-in file server: what to answer.

Pure functions over the request's fields and the file's validators; no I/O. Rules (RFC 9110):
- Validators (8.8): the ETag is strong, `"<mtime in ns, hex>-<size, hex>"` (a change of content
  that keeps both is not seen, as with nginx's mtime-size tags); Last-Modified is the mtime in
  whole seconds.
- Preconditions in the order of 13.2.2: If-Match (strong comparison; `*` matches) else
  If-Unmodified-Since fail with 412; If-None-Match (weak comparison; `*` matches) gives 304 for
  GET and HEAD, else If-Modified-Since (only without If-None-Match, GET and HEAD only) gives 304
  when the file is not newer. A date that does not parse is ignored (13.1.3, 13.1.4).
- Range (14.2): only for GET, only the `bytes` unit; a header that does not parse is ignored (a
  whole 200). One range: `first-last`, `first-`, `-suffix`, `last` cut to the size; it is
  unsatisfiable (416, `Content-Range: bytes */size`) when `first` is at or past the end, or a
  suffix is 0 or the file is empty (14.1.1, 15.5.17). More than one range is answered with the
  whole file (a server may ignore Range, 14.2): no multipart/byteranges.
- If-Range (13.1.5): the range applies only when it names the current representation: an
  entity-tag by strong comparison (a weak tag never matches), or an HTTP-date equal to
  Last-Modified; otherwise the whole file is sent (200).
- Header fields named more than once are combined as one list (5.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

Headers = list[tuple[bytes, bytes]]

_ENTITY_TAG = re.compile(rb'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
_RANGE_SPEC = re.compile(rb"\s*(\d*)\s*-\s*(\d*)\s*")
_MAX_DIGITS = 19  # a byte position past int64 is no file's


@dataclass(frozen=True, slots=True)
class Validators:
    """A file's validators: its strong ETag (quoted) and Last-Modified in whole seconds."""

    etag: bytes
    last_modified: int


def validators(mtime_ns: int, size: int) -> Validators:
    """The validators of a file of `size` bytes last changed at `mtime_ns` (ns since the epoch)."""
    return Validators(etag=b'"%x-%x"' % (mtime_ns, size), last_modified=mtime_ns // 1_000_000_000)


@dataclass(frozen=True, slots=True)
class Answer:
    """What to send: `status` 200, 206, 304, 412 or 416; for 200 and 206 the bytes
    `start` .. `end` (end exclusive) of the file."""

    status: int
    start: int = 0
    end: int = 0


def decide(method: bytes, headers: Headers, file: Validators, size: int) -> Answer:
    """The answer to a GET or HEAD of a file of `size` bytes (see the banner for the rules)."""
    if_match = _field(headers, b"if-match")
    if if_match is not None:
        if not _matches(if_match, file.etag, weak=False):
            return Answer(412)
    else:
        since = _date(_field(headers, b"if-unmodified-since"))
        if since is not None and file.last_modified > since:
            return Answer(412)
    if_none_match = _field(headers, b"if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, file.etag, weak=True):
            return Answer(304)
    else:
        modified_since = _date(_field(headers, b"if-modified-since"))
        if modified_since is not None and file.last_modified <= modified_since:
            return Answer(304)
    whole = Answer(200, 0, size)
    range_field = _field(headers, b"range")
    if method != b"GET" or range_field is None:
        return whole
    if_range = _field(headers, b"if-range")
    if if_range is not None and not _if_range_holds(if_range, file):
        return whole
    return _range(range_field, size) or whole


def _field(headers: Headers, name: bytes) -> bytes | None:
    """A field's value, the values of repeated fields joined as one list; None when absent."""
    values = [value for key, value in headers if key.lower() == name]
    if not values:
        return None
    return b", ".join(values)


def _matches(field: bytes, etag: bytes, *, weak: bool) -> bool:
    if field.strip() == b"*":
        return True
    return any(tag == etag and (weak or not weak_tag) for weak_tag, tag in _entity_tags(field))


def _entity_tags(field: bytes) -> list[tuple[bool, bytes]]:
    """The entity-tags of a list (`W/"a", "b"`); whatever does not parse ends the list."""
    tags = []
    position = 0
    while position < len(field):
        match = _ENTITY_TAG.match(field, position)
        if match is None or match.end() == position:
            break
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    return tags


def _date(field: bytes | None) -> int | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime) in seconds since the epoch, or None."""
    if field is None:
        return None
    try:
        parsed = parsedate_to_datetime(field.decode("latin-1").strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime carries no zone: it is GMT (RFC 9110 5.6.7)
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _if_range_holds(field: bytes, file: Validators) -> bool:
    text = field.strip()
    if text.startswith((b'"', b"W/")):
        tags = _entity_tags(text)
        return len(tags) == 1 and not tags[0][0] and tags[0][1] == file.etag
    date = _date(text)
    return date is not None and date == file.last_modified


def _range(field: bytes, size: int) -> Answer | None:
    """A single byte range as an Answer (206 or 416); None to ignore the field (send it whole)."""
    unit, equals, specs = field.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes":
        return None
    parts = [part for part in specs.split(b",") if part.strip()]  # empty list elements are allowed
    if len(parts) != 1:
        return None  # none, or several ranges: the whole file
    match = _RANGE_SPEC.fullmatch(parts[0])
    if match is None:
        return None
    first_text, last_text = match.groups()
    if len(first_text) > _MAX_DIGITS or len(last_text) > _MAX_DIGITS:
        return None
    if not first_text:
        if not last_text:
            return None  # "-" alone is not a range
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return Answer(416)
        return Answer(206, max(size - suffix, 0), size)
    first = int(first_text)
    if last_text:
        last = int(last_text)
        if last < first:
            return None  # invalid: ignore the field
        end = min(last + 1, size)
    else:
        end = size
    if first >= size:
        return Answer(416)
    return Answer(206, first, end)
