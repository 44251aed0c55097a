"""The detail of one capture as the inspector draws it: both messages taken apart and rendered.

Built on demand (never at capture time) from the stored bytes. Big bodies are cut for display with a
note; downloads serve every stored byte.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.urls import reverse

from agentapi.models import Capture

from .capture_list import summary
from .content_views import MAX_TEXT, Body, form_fields, multipart_parts, render_best, render_hex
from .message_body import Message, parse_message


def capture_detail(capture: Capture) -> dict[str, Any]:
    request_raw = bytes(capture.request_raw)
    detail = summary(capture)
    detail["request"] = message_detail(capture.id, "request", request_raw, capture.request_size, response=False)
    detail["response"] = None
    if capture.response_raw is not None:
        detail["response"] = message_detail(
            capture.id, "response", bytes(capture.response_raw), capture.response_size or 0, response=True
        )
    detail["urls"] = {
        "curl": reverse("inspector-curl", args=[capture.id]),
        "har": reverse("inspector-har-one", args=[capture.id]),
        "replay_seed": reverse("inspector-replay-seed", args=[capture.id]),
    }
    return detail


def message_detail(capture_id: str, side: str, raw: bytes, size: int, *, response: bool) -> dict[str, Any]:
    message = parse_message(raw, response=response)
    head = message.head
    body = Body(message.decoded_body, message.content_type)
    detail: dict[str, Any] = {
        "version": f"HTTP/{head.version}",
        "headers": [list(pair) for pair in head.headers],
        "size": size,
        "captured": len(raw),
        "truncated": len(raw) < size,
        "content_type": message.content_type,
        "body_size": len(message.body),
        "content_encoding": message.content_encoding,
        "notes": [*message.notes, *([message.decode_note] if message.decode_note else [])],
        "body_view": render_best(body),
        "hex": render_hex(Body(message.body)),
        "raw": raw[:MAX_TEXT].decode("utf-8", "replace"),
        "raw_note": f"showing the first {MAX_TEXT} of {len(raw)} stored bytes" if len(raw) > MAX_TEXT else "",
        "urls": {
            "raw": reverse("inspector-raw", args=[capture_id, side]),
            "body": reverse("inspector-body", args=[capture_id, side]),
        },
    }
    if response:
        detail["status"] = head.status
        detail["reason"] = head.reason
    else:
        detail["method"] = head.method
        detail["target"] = head.target
        detail["query"] = [list(pair) for pair in parse_qsl(urlsplit(head.target).query, keep_blank_values=True)]
        detail["form"] = _form(message)
    return detail


def _form(message: Message) -> list[list[str]] | None:
    """Form fields of a request body as name/value rows (multipart: files show their size)."""
    if message.mime_type == "application/x-www-form-urlencoded":
        return [list(pair) for pair in form_fields(message.decoded_body[:MAX_TEXT])]
    if message.mime_type == "multipart/form-data":
        rows = []
        for part in multipart_parts(message.decoded_body, message.content_type):
            if part["value"] is not None:
                rows.append([part["name"], part["value"]])
            else:
                label = f"file {part['filename']!r}, " if part["filename"] is not None else ""
                rows.append([part["name"], f"({label}{part['content_type'] or 'binary'}, {part['size']} bytes)"])
        return rows
    return None
