"""HAR import: the entries of a HAR 1.2 file (http://www.softwareishard.com/blog/har-12-spec/)
stored as captures, marked as imported, so a browser's or another tool's recording can be
inspected, diffed and replayed into a tunnel.

Rules:
- Bounded: a file of at most `MAX_BYTES` bytes and `MAX_ENTRIES` entries; every entry is checked
  before anything is stored (all or nothing), and a bad file is refused with one message naming
  the entry and the field ("entry 3: request.url 'x' is not an absolute http(s) URL").
- Marked: an imported capture has `remote_addr` `IMPORTED_ADDR` (no client connected) and the
  tunnel name `imported: <file name>`, which the list shows and `?tunnel=` filters on. Its id is
  new (it sorts as stored now, so eviction treats it as the newest); `start` and `duration_ns`
  are the entry's `startedDateTime` and `time`.
- Each message is rebuilt as HTTP/1.1 bytes, the shape the agent stores: the request line with the
  URL's path and query; the entry's headers in order, without HTTP/2 pseudo-headers (`:authority`)
  and framing fields (Content-Length, Transfer-Encoding), which are written anew for the body;
  `Host` from the URL when the entry has none; `X-Forwarded-Host` and `X-Forwarded-Proto` from the
  URL, as the agent adds them, so exports and copies give the URL that was called.
- Bodies: `postData.text` (or its `params`, url-encoded), `content.text` (base64 when
  `content.encoding` says so). HAR's content is decoded, so a response's `Content-Encoding` is
  dropped with the framing. A side past AGENT_CAPTURE_LIMIT is cut there with its true size kept,
  as a live capture is.
- A response with status 0 (HAR's aborted request) is stored as a capture without a response,
  `response_complete` false.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import transaction

from agentapi.engine.capture_id import CaptureIdFactory
from agentapi.models import Capture

MAX_BYTES = 32 * 1024 * 1024
MAX_ENTRIES = 10_000
IMPORTED_ADDR = "har-import"
TUNNEL_PREFIX = "imported: "
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_DROPPED_FROM_RESPONSE = _FRAMING | {"content-encoding"}


class HarImportError(ValueError):
    """The file cannot be imported; the message says why, naming the entry and field."""


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import stored: how many captures, under which tunnel name, their ids (oldest first)."""

    tunnel_name: str
    ids: list[str]


def is_imported(capture: Capture) -> bool:
    return capture.remote_addr == IMPORTED_ADDR


def import_har(data: bytes, filename: str, *, now: Callable[[], float]) -> Imported:
    """Check every entry of the HAR file `data`, then store them all as captures in one
    transaction. `now` gives epoch seconds for the new ids. Raises HarImportError."""
    if len(data) > MAX_BYTES:
        raise HarImportError(f"the file is {megabytes(len(data))}; a HAR import takes at most {megabytes(MAX_BYTES)}")
    entries = _entries(data)
    tunnel_name = (TUNNEL_PREFIX + (filename.strip() or "upload.har"))[:200]
    limit = settings.AGENT_CAPTURE_LIMIT
    rows = [_capture(entry, number, tunnel_name, limit) for number, entry in enumerate(entries, start=1)]
    ids = CaptureIdFactory()
    for row in rows:
        row.id = ids.new(now())
    with transaction.atomic():
        Capture.objects.bulk_create(rows, batch_size=200)
    return Imported(tunnel_name=tunnel_name, ids=[row.id for row in rows])


def megabytes(size: int) -> str:
    """`size` bytes as people read it in an error: \"40.0 MB\" (MiB, as file managers count)."""
    return f"{size / 1024 / 1024:.1f} MB"


def _entries(data: bytes) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8-sig")  # HAR files are UTF-8 (a byte order mark is allowed)
    except UnicodeDecodeError:
        raise HarImportError("not a HAR file: not UTF-8 text") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise HarImportError(
            f"not a HAR file: not JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except RecursionError:
        raise HarImportError("not a HAR file: nested too deep") from None
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise HarImportError("not a HAR file: it has no log.entries list")
    if not entries:
        raise HarImportError("the HAR file has no entries")
    if len(entries) > MAX_ENTRIES:
        raise HarImportError(f"the HAR file has {len(entries)} entries; an import takes at most {MAX_ENTRIES}")
    return entries


class _Entry:
    """Reads one entry's fields, each failure naming the entry and the field."""

    def __init__(self, entry: Any, number: int) -> None:
        if not isinstance(entry, dict):
            raise HarImportError(f"entry {number}: an object is expected")
        self.entry = entry
        self.number = number

    def error(self, message: str) -> HarImportError:
        return HarImportError(f"entry {self.number}: {message}")

    def object(self, parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = parent.get(key)
        if not isinstance(value, dict):
            raise self.error(f"{path} is missing")
        return value

    def headers(self, message: dict[str, Any], path: str) -> list[tuple[str, str]]:
        listed = message.get("headers", [])
        if not isinstance(listed, list):
            raise self.error(f"{path}.headers must be a list")
        headers = []
        for index, header in enumerate(listed):
            name = header.get("name") if isinstance(header, dict) else None
            value = header.get("value") if isinstance(header, dict) else None
            if not isinstance(name, str) or not isinstance(value, str):
                raise self.error(f"{path}.headers[{index}] needs a name and a value")
            if name.startswith(":"):  # HTTP/2 pseudo-headers: the request line says it all
                continue
            if not _TOKEN.match(name):
                raise self.error(f"{path}.headers[{index}]: {name[:64]!r} is not a header name")
            if any(ord(char) < 32 and char != "\t" for char in value) or "\x7f" in value:
                raise self.error(f"{path}.headers[{index}] ({name}): control characters in the value")
            headers.append((name, value))
        return headers

    def text(self, holder: dict[str, Any], path: str, *, base64_encoded: bool) -> bytes:
        text = holder.get("text", "")
        if not isinstance(text, str):
            raise self.error(f"{path}.text must be a string")
        if not base64_encoded:
            return text.encode("utf-8")
        try:
            return base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raise self.error(f"{path}.text is not valid base64") from None


def _capture(raw_entry: Any, number: int, tunnel_name: str, limit: int) -> Capture:
    entry = _Entry(raw_entry, number)
    request = entry.object(entry.entry, "request", "request")
    response = entry.object(entry.entry, "response", "response")
    method = request.get("method")
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise entry.error(f"request.method {str(method)[:32]!r} is not an HTTP method")
    url = request.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise entry.error(f"request.url {str(url)[:100]!r} is not an absolute http(s) URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(char.isspace() or ord(char) < 32 for char in target):
        raise entry.error("request.url has white space or control characters in its path")
    start = _started(entry)
    duration = entry.entry.get("time", 0)
    if not isinstance(duration, int | float) or isinstance(duration, bool):
        raise entry.error("time must be a number of milliseconds")
    request_raw = _request_bytes(entry, request, method, target, parts.netloc, parts.scheme)
    response_raw = _response_bytes(entry, response)
    stored_request, stored_response = request_raw[:limit], response_raw[:limit] if response_raw is not None else None
    return Capture(
        tunnel_name=tunnel_name,
        remote_addr=IMPORTED_ADDR,
        start=start,
        duration_ns=int(max(duration, 0) * 1_000_000),
        method=method,
        uri=target,
        request_raw=stored_request,
        request_size=len(request_raw),
        response_raw=stored_response,
        response_size=len(response_raw) if response_raw is not None else None,
        status_code=int(response["status"]) if response_raw is not None else None,
        stored_size=len(stored_request) + len(stored_response or b""),
        response_complete=response_raw is not None,
        incomplete_reason="" if response_raw is not None else "imported from a HAR file without a response",
    )


def _started(entry: _Entry) -> dt.datetime:
    text = entry.entry.get("startedDateTime")
    try:
        started = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise entry.error(f"startedDateTime {str(text)[:40]!r} is not an ISO 8601 date") from None
    return started if started.tzinfo is not None else started.replace(tzinfo=dt.UTC)


def _request_bytes(entry: _Entry, request: dict[str, Any], method: str, target: str, host: str, scheme: str) -> bytes:
    headers = [(n, v) for n, v in entry.headers(request, "request") if n.lower() not in _FRAMING]
    body = b""
    post = request.get("postData")
    if isinstance(post, dict):
        if post.get("text"):
            # Our own export marks a base64 body with the comment "base64" (HAR has no field for it).
            encoded = post.get("encoding") == "base64" or post.get("comment") == "base64"
            body = entry.text(post, "request.postData", base64_encoded=encoded)
        elif isinstance(post.get("params"), list):
            body = urlencode([(str(p.get("name", "")), str(p.get("value", ""))) for p in post["params"]]).encode()
    if not any(name.lower() == "host" for name, _ in headers):
        headers.insert(0, ("Host", host))
    headers = [(n, v) for n, v in headers if n.lower() not in ("x-forwarded-host", "x-forwarded-proto")]
    headers += [("X-Forwarded-Host", host), ("X-Forwarded-Proto", scheme)]
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", str(len(body))))
    return _message(f"{method} {target} HTTP/1.1", headers, body)


def _response_bytes(entry: _Entry, response: dict[str, Any]) -> bytes | None:
    status = response.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not (status == 0 or 100 <= status <= 999):
        raise entry.error(f"response.status {str(status)[:16]!r} is not an HTTP status")
    if status == 0:
        return None
    content = response.get("content", {})
    if not isinstance(content, dict):
        raise entry.error("response.content must be an object")
    body = entry.text(content, "response.content", base64_encoded=content.get("encoding") == "base64")
    headers = [(n, v) for n, v in entry.headers(response, "response") if n.lower() not in _DROPPED_FROM_RESPONSE]
    headers.append(("Content-Length", str(len(body))))
    reason = str(response.get("statusText") or "").replace("\r", " ").replace("\n", " ")
    # RFC 9112 4: the space before the reason phrase is there even when the phrase is empty.
    return _message(f"HTTP/1.1 {status} {reason}", headers, body)


def _message(start_line: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
