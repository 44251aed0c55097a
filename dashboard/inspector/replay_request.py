"""Replay with modifications: the editor's fields seeded from stored bytes, and request bytes built back.

Rules of `build_request`:
- The method is an HTTP token; the target has no whitespace; each header line is `Name: value` with a
  token name and no control characters. Blank header lines are skipped.
- The body is sent as given with a fresh `Content-Length` (any `Content-Length` or
  `Transfer-Encoding` line of the editor is replaced): the editor shows the body de-chunked, so it
  goes out with a length, never with the old framing.
- A missing `Host` line gets the tunnel's local address, as HTTP/1.1 requires one.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from agentapi.captures.header_text import editable_bytes, editable_text
from agentapi.captures.message_body import parse_message
from agentapi.models import Capture

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_TARGET = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
_FRAMING = frozenset({"content-length", "transfer-encoding"})
# Headers of well-known webhook signature schemes: a replay may be refused as stale or re-used.
SIGNATURE_HEADERS = frozenset(
    {
        "stripe-signature",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-slack-signature",
        "x-twilio-signature",
        "x-shopify-hmac-sha256",
        "webhook-signature",
        "svix-signature",
        "x-signature",
        "x-webhook-signature",
        "paypal-transmission-sig",
    }
)


class ReplayRequestError(ValueError):
    """The edited request cannot be sent; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class EditedRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


def seed(capture: Capture) -> dict[str, Any]:
    """The editor's starting point: the stored request, body de-chunked (but not decompressed)."""
    message = parse_message(bytes(capture.request_raw), response=False)
    body = message.body
    try:
        body_text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        body_text = None
    headers = [
        (editable_text(name), editable_text(value))
        for name, value in message.head.raw_headers
        if name.lower().decode("latin-1") not in _FRAMING
    ]
    return {
        "id": capture.id,
        "tunnel_name": capture.tunnel_name,
        "method": message.head.method or capture.method,
        "target": editable_text(message.head.target.encode("latin-1")) or capture.uri,
        "headers": "\n".join(f"{name}: {value}" for name, value in headers),
        "body": body_text,
        "body_base64": base64.b64encode(body).decode("ascii") if body_text is None else None,
        "truncated": capture.request_truncated,
        "signed": sorted(name for name, _ in headers if name.lower() in SIGNATURE_HEADERS),
    }


def parse_edit(data: Any) -> EditedRequest:
    if not isinstance(data, dict):
        raise ReplayRequestError("a JSON object is expected")
    method = str(data.get("method") or "").strip()
    if not _TOKEN.match(method):
        raise ReplayRequestError(f"method {method!r} is not an HTTP method token")
    target = str(data.get("target") or "").strip()
    if not _TARGET.match(target) or not (target.startswith("/") or target == "*" or "://" in target):
        raise ReplayRequestError(f"path {target!r}: a path starting with / and without spaces is expected")
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(str(data.get("headers") or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise ReplayRequestError(f"header line {number} ({line!r}): `Name: value` is expected")
        value = value.strip()
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise ReplayRequestError(f"header line {number}: control characters are not allowed in a value")
        headers.append((name, value))
    if data.get("body_base64") is not None:
        try:
            body = base64.b64decode(str(data["body_base64"]), validate=True)
        except ValueError:
            raise ReplayRequestError("body_base64 is not valid base64") from None
    else:
        body = str(data.get("body") or "").encode("utf-8")
    return EditedRequest(method=method, target=target, headers=headers, body=body)


def build_request(edit: EditedRequest, *, default_host: str) -> bytes:
    lines = [f"{edit.method} {edit.target} HTTP/1.1"]
    has_host = False
    for name, value in edit.headers:
        lower = name.lower()
        if lower in _FRAMING:
            continue
        has_host = has_host or lower == "host"
        lines.append(f"{name}: {value}")
    if not has_host:
        lines.insert(1, f"Host: {default_host}")
    if edit.body or edit.method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(edit.body)}")
    return b"".join(_encode(line) + b"\r\n" for line in lines) + b"\r\n" + edit.body


def _encode(line: str) -> bytes:
    # The editor's text is UTF-8 with the stored bytes that were not kept as lone surrogates.
    return editable_bytes(line)
