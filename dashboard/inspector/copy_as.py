"""Copy a captured request as code: JavaScript `fetch`, an HTTPie command line, Python `requests`.

Each is a small function of the stored request bytes, as curl is (exporters.py), with its rules:
- The URL is the one the client used (X-Forwarded-Host and X-Forwarded-Proto, which the agent adds);
  the agent's own X-Forwarded-* and the framing fields (Host, Content-Length, Transfer-Encoding,
  Connection) are left out: each client adds its own. Bodies are de-chunked, never decompressed:
  the bytes that were sent, sent again.
- fetch (WHATWG Fetch): strings are JSON string literals, which are JavaScript string literals
  (ECMAScript 2019 made JSON a subset). Header values are ByteStrings: each byte is one code unit
  (`\\u00e9`), so the bytes that were sent go out again. Headers are an object, or a list of pairs
  when a name repeats. A body that is not UTF-8 text is a Uint8Array from base64. A GET or HEAD
  body is left out (fetch refuses one) with a comment. Browsers drop forbidden header names
  (Cookie, User-Agent is allowed): a comment lists the ones the request has.
- HTTPie (httpie.io/docs/cli): every argument goes through `shlex.quote`. Headers are `Name:value`
  request items (`Name;` for an empty value); a header name is a token, so the first separator
  HTTPie finds in the item is the colon. Header bytes that are not UTF-8 text, and a body that is
  not, are spelled out with `printf %b` (the body piped in); a text body is `--raw`; without a
  piped body `--ignore-stdin` keeps HTTPie from reading a script's stdin as the body.
- Python requests: Python literals made by `repr`, so any text is quoted right. ASCII header values
  are str; others are bytes (requests sends bytes values as they are). requests takes one value per
  name: a repeated field is sent once with its values joined (`, `; `; ` for Cookie), as RFC 9110
  5.3 allows, and a comment says so. The body is bytes (`'text'.encode()` for UTF-8 text).
- A request cut by the capture limit or that did not cross whole gets a first comment line saying
  so, as the curl command does.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from agentapi.captures.header_text import exact_text
from agentapi.captures.message_body import parse_message
from agentapi.models import Capture

from .exporters import public_url

_SKIP = frozenset(
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
# Fetch's forbidden request-header names a browser silently drops (fetch.spec.whatwg.org).
_FORBIDDEN = frozenset(
    {
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "keep-alive",
        "origin",
        "referer",
        "te",
        "trailer",
        "upgrade",
        "via",
    }
)


@dataclass(frozen=True, slots=True)
class CopiedRequest:
    """What every format sends: `headers` are (name, value) bytes in wire order, framing left out."""

    method: str
    url: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    notes: list[str]


def copied_request(capture: Capture) -> CopiedRequest:
    message = parse_message(bytes(capture.request_raw), response=False)
    headers = [(name, value) for name, value in message.head.raw_headers if name.lower().decode("latin-1") not in _SKIP]
    notes = []
    if not capture.request_complete:
        notes.append(
            "the request is incomplete: "
            + " ".join((capture.incomplete_reason or "the connection ended early").split())
        )
    if capture.request_truncated:
        notes.append(f"only {len(capture.request_raw)} of {capture.request_size} bytes of this request were captured")
    return CopiedRequest(
        method=message.head.method or capture.method,
        url=public_url(message),
        headers=headers,
        body=message.body,
        notes=notes,
    )


def _utf8(data: bytes) -> str | None:
    text = exact_text(data)
    return None if text is None or "\x00" in text else text


# --- fetch -----------------------------------------------------------------------------------
def fetch_code(capture: Capture) -> str:
    """`fetch(url, {method, headers, body}).then(...)`, valid JavaScript for a browser or Node 18+."""
    request = copied_request(capture)
    lines = [f"// {note}" for note in request.notes]
    names = [name.lower() for name, _ in request.headers]
    forbidden = sorted({name.decode("latin-1") for name in names if name.decode("latin-1") in _FORBIDDEN})
    if forbidden:
        lines.append(f"// a browser drops {', '.join(forbidden)} (forbidden header names); Node sends them")
    options = [f"  method: {_js(request.method)},"]
    pairs = [(_js(name.decode("latin-1")), _js(value.decode("latin-1"))) for name, value in request.headers]
    if len(set(names)) < len(names):
        options.append("  headers: [")
        options += [f"    [{name}, {value}]," for name, value in pairs]
        options.append("  ],")
    elif pairs:
        options.append("  headers: {")
        options += [f"    {name}: {value}," for name, value in pairs]
        options.append("  },")
    if request.body and request.method.upper() in ("GET", "HEAD"):
        lines.append(f"// the {len(request.body)}-byte body is left out: fetch sends none with {request.method}")
    elif request.body:
        text = _utf8(request.body)
        if text is not None:
            options.append(f"  body: {_js(text)},")
        else:
            encoded = _js(base64.b64encode(request.body).decode("ascii"))
            options.append(f"  body: Uint8Array.from(atob({encoded}), (c) => c.charCodeAt(0)),")
    lines.append(f"fetch({_js(request.url)}, {{")
    lines += options
    lines += ["})", "  .then((response) => response.text())", "  .then(console.log);"]
    return "\n".join(lines)


def _js(text: str) -> str:
    # A JSON string literal is a JavaScript one; ASCII-only, so the page's encoding cannot matter.
    return json.dumps(text)


# --- HTTPie ----------------------------------------------------------------------------------
def httpie_command(capture: Capture) -> str:
    """`http --ignore-stdin [--raw BODY] METHOD URL Name:value...`, one shell line, every argument
    quoted; a body that is not UTF-8 text is piped in instead."""
    request = copied_request(capture)
    text = _utf8(request.body) if request.body else None
    prefix = ""
    if request.body and text is None:
        prefix = f"printf %b {shlex.quote(_octal_escape(request.body))} | "
        words = []
    elif request.body:
        words = ["--ignore-stdin", "--raw", shlex.quote(text or "")]
    else:
        words = ["--ignore-stdin"]
    words += [shlex.quote(request.method), shlex.quote(request.url)]
    words += [_httpie_header(name, value) for name, value in request.headers]
    command = prefix + "http " + " ".join(words)
    return "".join(f"# {note}\n" for note in request.notes) + command


def _httpie_header(name: bytes, value: bytes) -> str:
    item = name + (b":" + value if value else b";")
    text = _utf8(item)
    if text is not None and not any(ord(char) < 32 and char != "\t" for char in text):
        return shlex.quote(text)
    return f'"$(printf %b {shlex.quote(_octal_escape(item))})"'


def _octal_escape(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 and b != 0x5C else f"\\0{b:03o}" for b in data)


# --- Python requests -------------------------------------------------------------------------
def requests_code(capture: Capture) -> str:
    """A Python script that sends the request with `requests` and prints the answer."""
    request = copied_request(capture)
    lines = [f"# {note}" for note in request.notes]
    lines += [
        "import requests",
        "",
        "response = requests.request(",
        f"    {request.method!r},",
        f"    {request.url!r},",
    ]
    merged: dict[bytes, tuple[bytes, list[bytes]]] = {}
    for name, value in request.headers:
        merged.setdefault(name.lower(), (name, []))[1].append(value)
    if merged:
        lines.append("    headers={")
        for lower, (name, values) in merged.items():
            if len(values) > 1:
                lines.append(f"        # {name.decode('latin-1')} was sent {len(values)} times: one field here")
            joined = (b"; " if lower == b"cookie" else b", ").join(values)
            lines.append(f"        {name.decode('latin-1')!r}: {_python_value(joined)},")
        lines.append("    },")
    if request.body:
        text = _utf8(request.body)
        lines.append(f"    data={text!r}.encode()," if text is not None else f"    data={request.body!r},")
    lines += [")", "print(response.status_code)", "print(response.text)"]
    return "\n".join(lines)


def _python_value(value: bytes) -> str:
    return repr(value.decode("ascii")) if value.isascii() else repr(value)


FORMATS: dict[str, Callable[[Capture], str]] = {
    "fetch": fetch_code,
    "httpie": httpie_command,
    "requests": requests_code,
}
