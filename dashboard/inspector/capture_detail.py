"""The detail of one capture as the inspector draws it: both messages taken apart and rendered.

Built on demand (never at capture time) from the stored bytes. Big bodies are cut for display with a
note, but checked whole (a JSON or XML syntax check reads every captured byte, decoded); downloads
serve every stored byte. Each side says whether its body is all there (`body_complete`: not cut by
the capture limit or the decoded-body limit), so a view tells a cut from a syntax error. The
request carries the URL the client used (`url`, for the copy button); multipart parts carry the
URL of their own download. The Traffic Policy's steps come as stored with the capture. A capture
the service answered with 101 carries `websocket`: where its frames are read (the API's extension)
and the live socket that announces `frames.added`; null for every other capture.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.urls import reverse

from agentapi.captures.content_views import MAX_TEXT, Body, form_fields, multipart_parts, render_best, render_hex
from agentapi.captures.message_body import Message, parse_message
from agentapi.captures.summary import summary
from agentapi.models import Capture

from .exporters import public_url


def capture_detail(capture: Capture) -> dict[str, Any]:
    request_raw = bytes(capture.request_raw)
    detail = summary(capture)
    detail["request"] = message_detail(
        capture.id, "request", request_raw, capture.request_size, response=False, complete=capture.request_complete
    )
    detail["request"]["complete"] = capture.request_complete
    detail["response"] = None
    if capture.response_raw is not None:
        detail["response"] = message_detail(
            capture.id,
            "response",
            bytes(capture.response_raw),
            capture.response_size or 0,
            response=True,
            complete=capture.response_complete,
        )
        detail["response"]["complete"] = capture.response_complete
    detail["banners"] = banners(capture)
    detail["traffic_policy"] = policy_steps(capture)
    detail["urls"] = {
        "curl": reverse("inspector-curl", args=[capture.id]),
        "har": reverse("inspector-har-one", args=[capture.id]),
        "replay_seed": reverse("inspector-replay-seed", args=[capture.id]),
    }
    detail["websocket"] = (
        {"frames": reverse("capture-websocket", kwargs={"id": capture.id}), "socket": "/ws/inspector"}
        if capture.status_code == 101
        else None
    )
    return detail


def message_detail(
    capture_id: str, side: str, raw: bytes, size: int, *, response: bool, complete: bool = True
) -> dict[str, Any]:
    """One side of the detail. `raw`: the stored bytes; `size`: the bytes that crossed; `complete`:
    whether the message crossed whole (the capture's completeness flag)."""
    message = parse_message(raw, response=response)
    head = message.head
    body_complete = body_is_whole(message, stored=len(raw), size=size, crossed_whole=complete)
    body = Body(message.decoded_body, message.content_type, complete=body_complete)
    body_view = render_best(body)
    if body_view["view"] == "multipart":
        for part in body_view["parts"]:
            part["download"] = reverse("inspector-part", args=[capture_id, side, part["index"]])
    detail: dict[str, Any] = {
        "version": f"HTTP/{head.version}",
        "headers": [list(pair) for pair in message.headers],
        "size": size,
        "captured": len(raw),
        "truncated": len(raw) < size,
        "content_type": message.content_type,
        # The body as it crossed (framing removed, content coding kept), and decoded for showing.
        "body_size": len(message.body),
        "content_encoding": message.content_encoding,
        "decoded_size": len(message.decoded_body) if message.decoded else None,
        "decoded_cut": message.decoded_cut,
        "body_complete": body_complete,
        "filename": message.filename,
        "notes": message.notes,
        "body_view": body_view,
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
        detail["url"] = public_url(message)
    return detail


def body_is_whole(message: Message, *, stored: int, size: int, crossed_whole: bool) -> bool:
    """Whether the decoded body holds every byte of the body (nothing cut by the capture limit, the
    decoded-body limit, a client or service that left, or a coded stream that ends early)."""
    ended_early = message.coding is not None and message.coding.ended_early
    return crossed_whole and stored >= size and not message.decoded_cut and not ended_early


def policy_steps(capture: Capture) -> list[dict[str, Any]]:
    """What the endpoint's Traffic Policy did, in the order the actions ran: {phase, rule, action,
    outcome, terminal}, `terminal` on the step that answered instead of the service (at most one a
    phase). Empty when the tunnel has no policy."""
    keys = ("phase", "rule", "action", "outcome", "terminal")
    return [{key: step[key] for key in keys} for step in capture.policy_trace]


def banners(capture: Capture) -> list[dict[str, str]]:
    """What the detail must say first when the capture is not the whole exchange.

    `incomplete`: a side did not cross whole (the client or the service went away); `truncated`: it
    crossed whole but only the first bytes were kept (the capture limit). Each banner has a `side`.
    """
    found = []
    reason = capture.incomplete_reason or "the connection ended early"
    for side, complete in (("request", capture.request_complete), ("response", capture.response_complete)):
        if not complete:
            found.append({"kind": "incomplete", "side": side, "text": f"The {side} is incomplete: {reason}."})
    for side, raw, size in (
        ("request", capture.request_raw, capture.request_size),
        ("response", capture.response_raw, capture.response_size),
    ):
        if raw is not None and size is not None and len(raw) < size:
            found.append(
                {
                    "kind": "truncated",
                    "side": side,
                    "text": f"The {side} was {size} bytes; the first {len(raw)} were stored (the capture limit).",
                }
            )
    return found


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
