"""Where an HTTP exchange meets its endpoint's Traffic Policy: heads as policy facts and back as
bytes, and the agent's own answers (Respond) as HTTP messages.

Rules:
- The request a policy sees is the one the client sent: origin-form target, header fields in
  order, text as latin-1 (one character per byte, so a value goes out as the bytes it came in as).
- A policy changes the message, never its framing: Content-Length and Transfer-Encoding (and the
  hop-by-hop fields, which stay on the client's side anyway: RFC 9110 7.6.1) are taken from the
  head as received whatever the policy did to them, so the body still reads right on both sides.
- A changed response head is written back with the service's status line and the policy's fields;
  its framing fields are the service's too (compress-response reframes on purpose: see
  response_transform.py). A body re-framed as chunked behind an HTTP/1.0 status line goes out as
  HTTP/1.1 (RFC 9112 6.1: Transfer-Encoding is HTTP/1.1's), with `Connection: close` unless the
  service asked to keep the connection.
- The agent's answers (custom-response, deny, redirect, a refused basic-auth, a rate limit...) carry
  Content-Length, a Content-Type inferred from the body when none is given (ngrok's custom-response
  doc: JSON, HTML or plain text), and `Connection: close` unless the client may keep the connection.
- A policy that fails while running answers 500 with `ngrok-error-code: ERR_NGROK_2300` ("internal
  error occurred while processing policy action", ngrok's errors reference).
"""

from __future__ import annotations

import json

from .http1 import RequestHead, origin_form, reason_phrase, request_head
from .policy.facts import RequestFacts, ResponseFacts
from .policy.outcomes import Respond

POLICY_FAILED_CODE = "ERR_NGROK_2300"
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_FRAMING_TEXT = frozenset({"content-length", "transfer-encoding"})


def request_facts(head: RequestHead, *, scheme: str, start: float) -> RequestFacts:
    """The request as the policy sees it; `start` in epoch seconds."""
    target, authority = origin_form(head.target)
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers]
    host = authority.decode("latin-1") if authority else (head.header(b"host") or b"").decode("latin-1")
    return RequestFacts(
        method=head.method.decode("latin-1"),
        target=target.decode("latin-1"),
        version=head.version,
        scheme=scheme,
        host=host,
        headers=headers,
        start=start,
    )


def policy_head(original: RequestHead, facts: RequestFacts, *, drop_expect: bool = False) -> RequestHead:
    """The request head as the policy left it, with the original's framing fields. `drop_expect`:
    the agent read the whole body already (and answered any 100-continue itself)."""
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in facts.headers
        if name.lower() not in _FRAMING_TEXT and not (drop_expect and name.lower() == "expect")
    ]
    headers += [(name, value) for name, value in original.headers if name.lower() in _FRAMING]
    return request_head(
        facts.method.encode("latin-1"),
        facts.target.encode("latin-1"),
        original.version,
        headers,
        keep_alive=original.keep_alive,
        chunked=original.chunked,
        upgrade=original.upgrade,
    )


def request_head_bytes(head: RequestHead) -> bytes:
    """A request head as received (for the capture of a request the policy answered)."""
    lines = [b"%s %s HTTP/%s\r\n" % (head.method, head.target, head.version.encode("ascii"))]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in head.headers]
    lines.append(b"\r\n")
    return b"".join(lines)


def response_facts(status: int, reason: str, version: str, headers: list[tuple[str, str]]) -> ResponseFacts:
    return ResponseFacts(status=status, reason=reason, version=version, headers=list(headers))


def response_head_bytes(facts: ResponseFacts, original: list[tuple[str, str]]) -> bytes:
    """A response head from the policy's facts, with the framing fields of `original` (the
    service's, or the compressed body's own)."""
    reason = facts.reason or reason_phrase(facts.status)
    fields = [(name, value) for name, value in facts.headers if name.lower() not in _FRAMING_TEXT]
    framing = [(name, value) for name, value in original if name.lower() in _FRAMING_TEXT]
    version = facts.version
    if version == "1.0" and any(name.lower() == "transfer-encoding" for name, _ in framing):
        # A body re-framed as chunked goes out under HTTP/1.1 (RFC 9112 6.1: an HTTP/1.0 message
        # never carries Transfer-Encoding); the service's 1.0 answer closes the connection unless
        # it asked to keep it alive, which 1.1 says with `Connection: close`.
        version = "1.1"
        if not any(name.lower() == "connection" and "keep-alive" in value.lower() for name, value in fields):
            fields = [(name, value) for name, value in fields if name.lower() != "connection"]
            fields.append(("Connection", "close"))
    lines = [f"HTTP/{version} {facts.status} {reason}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in fields + framing]
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "replace")


def answer_bytes(answer: Respond, *, keep_alive: bool, head_only: bool = False) -> bytes:
    """The agent's answer as an HTTP/1.1 message (no body for HEAD, 204 or 304)."""
    body = answer.body
    names = {name.lower() for name, _ in answer.headers}
    lines = [f"HTTP/1.1 {answer.status} {reason_phrase(answer.status) or 'Status'}\r\n"]
    for name, value in answer.headers:
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue
        lines.append(f"{name}: {value}\r\n")
    if "content-type" not in names and body:
        lines.append(f"Content-Type: {inferred_content_type(body)}\r\n")
    no_body = head_only or answer.status in (204, 304) or 100 <= answer.status < 200
    if answer.status not in (204, 304):
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("latin-1", "replace")
    return head if no_body else head + body


def failure_answer(detail: str) -> Respond:
    """The agent's 500 for a policy that failed while running."""
    body = f"The traffic policy failed: {detail}\n".encode("utf-8", "replace")
    return Respond(500, [("Content-Type", "text/plain; charset=utf-8"), ("ngrok-error-code", POLICY_FAILED_CODE)], body)


def inferred_content_type(body: bytes) -> str:
    """ngrok's rule for a custom-response without Content-Type: JSON, HTML or plain text."""
    text = body.lstrip()
    if text[:1] in (b"{", b"["):
        try:
            json.loads(body)
            return "application/json"
        except ValueError:
            pass
    if text[:1] == b"<" and (text[:15].lower().startswith((b"<!doctype html", b"<html")) or b"</" in text):
        return "text/html; charset=utf-8"
    return "text/plain; charset=utf-8"
