"""Exports of captures: a curl command line and HAR 1.2, each a small function of stored bytes.

curl: every argument goes through `shlex.quote`. The URL is the one the client used (X-Forwarded-Host
and X-Forwarded-Proto, which the agent adds); the agent's own X-Forwarded-* and the framing headers
are left out, curl adds its own. Header lines and bodies give curl the bytes that were sent: UTF-8
text as it is (`-H 'X-User: André'`), anything else through `printf %b` with octal escapes (a
header as `-H "$(printf %b '...')"`, a body piped in), so the command stays one pasteable line.

HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/): one entry per capture, oldest first; a
list is streamed entry by entry (`har_chunks`) with `log.comment` saying how many captures it holds
and which.
Header values are UTF-8 text, with `\\xNN` for bytes that are not UTF-8 (agentapi.captures.header_text).
`content.text` is the response body with its content coding undone (gzip, deflate, br, zstd, stacked;
within AGENT_DECODED_BODY_LIMIT, `_decodedCut` when cut there); bodies that are not UTF-8 text are
base64 (`content.encoding`). `bodySize` is the size that crossed the wire, even when only part was
stored. Custom fields (HAR allows `_`-prefixed ones) carry what HAR has no field for:
`_truncated` on a request or response whose bytes were only partly stored (`_storedSize` says how
many), `_incomplete` on one that did not cross whole, with the entry's `_incompleteReason`. A capture
still waiting for its response has status 0, as HAR does for aborted requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shlex
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings

from agentapi.captures.content_views import form_fields
from agentapi.captures.header_text import exact_text
from agentapi.captures.message_body import Message, parse_message
from agentapi.models import Capture

_CURL_SKIP = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }
)


def public_url(message: Message) -> str:
    """The URL the client asked for, as far as the stored request tells."""
    target = message.head.target
    if "://" in target:
        return target
    host = message.header("x-forwarded-host") or message.header("host") or "localhost"
    scheme = (message.header("x-forwarded-proto") or "http").split(",")[0].strip() or "http"
    return f"{scheme}://{host}{target}"


def curl_command(capture: Capture) -> str:
    message = parse_message(bytes(capture.request_raw), response=False)
    method = message.head.method or capture.method
    body = message.body
    args = ["curl"]
    if method == "HEAD":
        args.append("--head")
    elif method != "GET" or body:
        args += ["-X", method]
    args.append(public_url(message))
    words = [shlex.quote(arg) for arg in args]
    for name, value in message.head.raw_headers:
        if name.lower().decode("latin-1") not in _CURL_SKIP:
            words += ["-H", _header_word(name + b": " + value)]
    prefix = ""
    if body:
        text = _text(body)
        if text is not None:
            words += ["--data-binary", shlex.quote(text)]
        else:
            prefix = f"printf %b {shlex.quote(_octal_escape(body))} | "
            words += ["--data-binary", "@-"]
    command = prefix + " ".join(words)
    if capture.request_truncated:
        command = (
            f"# only {len(capture.request_raw)} of {capture.request_size} bytes of this request were captured\n"
            + command
        )
    if not capture.request_complete:
        reason = " ".join((capture.incomplete_reason or "the connection ended early").split())
        command = f"# the request is incomplete: {reason}\n" + command
    return command


def _header_word(line: bytes) -> str:
    """One shell word that gives curl exactly these header bytes."""
    text = exact_text(line)
    if text is not None and not any(ord(char) < 32 and char != "\t" for char in text):
        return shlex.quote(text)
    # $(...) drops trailing newlines only, and a header line has none.
    return f'"$(printf %b {shlex.quote(_octal_escape(line))})"'


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _octal_escape(data: bytes) -> str:
    """Bytes as `printf %b` input: printable ASCII as is, everything else (and backslash) as \\0NNN."""
    return "".join(chr(b) if 32 <= b < 127 and b != 0x5C else f"\\0{b:03o}" for b in data)


# --- HAR ------------------------------------------------------------------------------------
def _creator() -> dict[str, str]:
    return {"name": "tunnel-agent inspector", "version": settings.AGENT_VERSION}


def har_log(captures: Iterable[Capture]) -> dict[str, Any]:
    """A whole HAR document in memory: for one capture (the list's export is `har_chunks`)."""
    return {
        "log": {
            "version": "1.2",
            "creator": _creator(),
            "pages": [],
            "entries": [har_entry(capture) for capture in captures],
        }
    }


def har_chunks(captures: Iterable[Capture], *, selection: str) -> Iterator[str]:
    """A HAR 1.2 document as text chunks, one entry at a time, for a set of any size.

    `captures` is read lazily, in the order given. The document's `log.comment`, written after the
    entries (JSON objects are unordered), states what the file holds: how many captures and which
    (`selection`, e.g. "every capture matching path=/api"), so a reader never has to guess whether
    it was cut.
    """
    head = {"version": "1.2", "creator": _creator(), "pages": []}
    yield '{"log": ' + json.dumps(head, ensure_ascii=False)[:-1] + ', "entries": [\n'
    count = 0
    for capture in captures:
        # One entry a line, without indentation: json.dumps indents only with its slow Python encoder.
        yield (",\n" if count else "") + json.dumps(har_entry(capture), ensure_ascii=False)
        count += 1
    comment = f"{count} capture{'' if count == 1 else 's'}: {selection}, oldest first"
    yield "\n], " + '"comment": ' + json.dumps(comment, ensure_ascii=False) + "}}\n"


def har_entry(capture: Capture) -> dict[str, Any]:
    request = parse_message(bytes(capture.request_raw), response=False)
    response = parse_message(bytes(capture.response_raw), response=True) if capture.response_raw is not None else None
    duration_ms = capture.duration_ns / 1_000_000
    entry: dict[str, Any] = {
        "startedDateTime": capture.start.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "time": duration_ms,
        "request": _har_request(capture, request),
        "response": _har_response(capture, response),
        "cache": {},
        "timings": {"send": 0, "wait": duration_ms, "receive": 0},
        "_id": capture.id,
        "_tunnel_name": capture.tunnel_name,
    }
    notes = []
    if capture.request_truncated:
        notes.append(f"request: {len(capture.request_raw)} of {capture.request_size} bytes captured")
    if capture.response_truncated:
        notes.append(f"response: {len(capture.response_raw or b'')} of {capture.response_size} bytes captured")
    if not (capture.request_complete and capture.response_complete):
        entry["_incompleteReason"] = capture.incomplete_reason
        sides = [
            side
            for side, whole in (("request", capture.request_complete), ("response", capture.response_complete))
            if not whole
        ]
        notes.append(f"{' and '.join(sides)} incomplete: {capture.incomplete_reason or 'the connection ended early'}")
    if capture.replay_of:
        notes.append(f"replay of {capture.replay_of}")
    if notes:
        entry["comment"] = "; ".join(notes)
    return entry


def _truth(result: dict[str, Any], *, stored: int, size: int, complete: bool) -> None:
    """The custom fields of a request or response that was not stored or sent whole."""
    if stored < size:
        result["_truncated"] = True
        result["_storedSize"] = stored
    if not complete:
        result["_incomplete"] = True


def _headers(message: Message) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in message.headers]


def _request_cookies(message: Message) -> list[dict[str, str]]:
    cookies = []
    for name, value in message.headers:
        if name.lower() == "cookie":
            for pair in value.split(";"):
                key, _, cookie_value = pair.strip().partition("=")
                if key:
                    cookies.append({"name": key, "value": cookie_value})
    return cookies


def _response_cookies(message: Message) -> list[dict[str, str]]:
    cookies = []
    for name, value in message.headers:
        if name.lower() == "set-cookie":
            key, _, cookie_value = value.split(";", 1)[0].strip().partition("=")
            if key:
                cookies.append({"name": key, "value": cookie_value})
    return cookies


def _har_request(capture: Capture, message: Message) -> dict[str, Any]:
    url = public_url(message)
    result: dict[str, Any] = {
        "method": message.head.method or capture.method,
        "url": url,
        "httpVersion": f"HTTP/{message.head.version}",
        "cookies": _request_cookies(message),
        "headers": _headers(message),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
        "headersSize": len(message.head_bytes),
        "bodySize": max(capture.request_size - len(message.head_bytes), 0),
    }
    if message.body:
        post: dict[str, Any] = {"mimeType": message.content_type}
        text = _text(message.body)
        if text is None:
            # HAR 1.2 has no encoding for postData; base64 says what it is in a comment.
            post["text"] = base64.b64encode(message.body).decode("ascii")
            post["comment"] = "base64"
        else:
            post["text"] = text
        if message.mime_type == "application/x-www-form-urlencoded":
            post["params"] = [{"name": k, "value": v} for k, v in form_fields(message.body)]
        result["postData"] = post
    _truth(result, stored=len(capture.request_raw), size=capture.request_size, complete=capture.request_complete)
    return result


def _har_response(capture: Capture, message: Message | None) -> dict[str, Any]:
    if message is None:
        pending: dict[str, Any] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "comment": "no response yet" if capture.response_complete else "no response",
        }
        if not capture.response_complete:
            pending["_incomplete"] = True
        return pending
    content: dict[str, Any] = {"size": len(message.decoded_body), "mimeType": message.content_type}
    if message.decoded:
        content["compression"] = len(message.decoded_body) - len(message.body)
    if message.decoded_cut:
        content["_decodedCut"] = True
        content["comment"] = f"decoded body cut at {len(message.decoded_body)} bytes"
    text = _text(message.decoded_body)
    if text is None:
        content["text"] = base64.b64encode(message.decoded_body).decode("ascii")
        content["encoding"] = "base64"
    elif text:
        content["text"] = text
    result = {
        "status": message.head.status or capture.status_code or 0,
        "statusText": message.head.reason,
        "httpVersion": f"HTTP/{message.head.version}",
        "cookies": _response_cookies(message),
        "headers": _headers(message),
        "content": content,
        "redirectURL": message.header("location") or "",
        "headersSize": len(message.head_bytes),
        "bodySize": max((capture.response_size or 0) - len(message.head_bytes), 0),
    }
    _truth(
        result,
        stored=len(capture.response_raw or b""),
        size=capture.response_size or 0,
        complete=capture.response_complete,
    )
    return result
