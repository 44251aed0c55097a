"""Search that matches the screen: what a typed text looks like in stored bytes, and the exact check.

The inspector shows a request target percent-decoded (RFC 3986 2.1) as UTF-8, form fields decoded,
JSON strings unescaped and bodies with their content coding undone. Stored captures hold the bytes
as they crossed. So a search for `Jürgen` must find `/json?name=J%C3%BCrgen`, `{"n":"J\\u00fcrgen"}`
and a gzip body holding `Jürgen`. Two steps, so the database can narrow before Python checks:

- *Forms*: the spellings a text may have on the wire. `target_forms` for a request target: as typed,
  its UTF-8 bytes read as Latin-1 (the agent stores a target's raw bytes that way), and
  percent-encoded as browsers do (only what must be: non-ASCII, controls, space and `"<>\\^`{|}#`),
  as Python's `quote` does (all but unreserved and `/`) and as form encoders do (everything but
  RFC 3986 unreserved characters), each with space as
  `%20` and as `+`. `body_forms` for a body: as typed (UTF-8), the JSON spellings of common encoders
  (Python's and PHP's `\\u00fc`, .NET's `\\u00FC`, Go's `\\u003c` for `<>&`, `\\/`) and the form
  encodings. A database search for any form (case-insensitive for targets) finds every row that can
  match, and some that do not.
- *Exact checks*: `target_contains` (the decoded target contains the text, any case: `str.casefold`),
  `body_contains` on a stored message (its decoded body contains the text's UTF-8 bytes; a JSON body
  a JSON form of it; a url-encoded form body a form encoding of it; case as typed, as bytes are
  compared), `head_contains` (the header fields as the inspector shows them).
`+` counts as a space anywhere in a target, as in a query string (a literal `+` in a path is rare).
"""

from __future__ import annotations

import json
from urllib.parse import quote, unquote_to_bytes

from .message_body import Message

# What browsers percent-encode in a path or query (WHATWG URL: the path and query percent-encode
# sets), beside non-ASCII and controls; everything else they send as typed.
_BROWSER_SAFE = "!$&'()*+,-./:;=?@_~[]%"
# .NET's System.Text.Json escapes these (and non-ASCII) as \\uXXXX with upper-case digits.
_DOTNET_ESCAPED = "<>&'+`"
_GO_ESCAPED = "<>&\u2028\u2029"


def decoded_target(uri: str) -> str:
    """A request target as the inspector shows it: percent-decoded, UTF-8 (bad bytes replaced),
    `+` as a space. `uri` is the stored target (its bytes read as Latin-1)."""
    raw = uri.encode("latin-1", "replace").replace(b"+", b" ")
    return unquote_to_bytes(raw).decode("utf-8", "replace")


def _dedupe(forms: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(form for form in forms if form))


def _encoded(text: str, safe: str) -> list[str]:
    encoded = quote(text, safe=safe + " ")
    return [encoded.replace(" ", "%20"), encoded.replace(" ", "+")]


def target_forms(text: str) -> tuple[str, ...]:
    """Spellings of `text` in a stored request target; a target whose decoded text contains `text`
    (any case) contains one of them (any ASCII case) unless it percent-encodes a character no
    encoder does (e.g. `%41` for `A`)."""
    forms = [text, text.encode("utf-8").decode("latin-1")]
    forms += _encoded(text, _BROWSER_SAFE)
    forms += _encoded(text, "/")  # Python's urllib.parse.quote
    forms += _encoded(text, "")
    return _dedupe(forms)


def target_contains(uri: str, text: str) -> bool:
    """Whether the decoded target contains `text`, in any case."""
    return text.casefold() in decoded_target(uri).casefold()


def _json_escape(text: str, *, ascii_only: bool, upper: bool, slash: bool, extra: str = "") -> str:
    body = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
    if extra:
        body = "".join(f"\\u{ord(char):04x}" if char in extra else char for char in body)
    if upper:
        # Upper-case hex digits of \\uXXXX escapes only (the text itself may hold "\\u" too).
        parts = body.split("\\u")
        body = parts[0] + "".join("\\u" + part[:4].upper() + part[4:] for part in parts[1:])
    if slash:
        body = body.replace("/", "\\/")
    return body


def json_forms(text: str) -> tuple[str, ...]:
    """Spellings of `text` inside a JSON string, as common encoders write it."""
    return _dedupe(
        [
            _json_escape(text, ascii_only=False, upper=False, slash=False),  # JavaScript, Java
            _json_escape(text, ascii_only=True, upper=False, slash=False),  # Python
            _json_escape(text, ascii_only=True, upper=False, slash=True),  # PHP
            _json_escape(text, ascii_only=True, upper=True, slash=False, extra=_DOTNET_ESCAPED),  # .NET
            _json_escape(text, ascii_only=False, upper=False, slash=False, extra=_GO_ESCAPED),  # Go
        ]
    )


def form_forms(text: str) -> tuple[str, ...]:
    """Spellings of `text` in an application/x-www-form-urlencoded body."""
    return _dedupe(_encoded(text, "") + _encoded(text, _BROWSER_SAFE))


def body_forms(text: str) -> tuple[bytes, ...]:
    """Every byte string a body that shows `text` may hold (for a database search)."""
    forms = [text, *json_forms(text), *form_forms(text)]
    return tuple(dict.fromkeys(form.encode("utf-8") for form in forms if form))


def body_contains(message: Message, text: str) -> bool:
    """Whether the body the inspector shows for `message` contains `text` (bytes compared, case as
    typed): the decoded body holds its UTF-8 bytes, or a JSON body one of its JSON spellings, or a
    url-encoded form body one of its form encodings (any case of the %XX digits)."""
    needle = text.encode("utf-8")
    if not needle:
        return True
    data = message.decoded_body
    if needle in data or needle in message.body:
        return True
    mime = message.mime_type
    looks_json = mime == "application/json" or mime.endswith("+json") or data[:64].lstrip()[:1] in (b"{", b"[")
    if looks_json and any(form.encode("utf-8") in data for form in json_forms(text)):
        return True
    if mime == "application/x-www-form-urlencoded":
        lowered = data.lower()
        return any(form.lower().encode("ascii") in lowered for form in form_forms(text))
    return False


def head_contains(message: Message, text: str) -> bool:
    """Whether a header field, shown as `Name: value`, contains `text` (case as typed)."""
    return any(text in f"{name}: {value}" for name, value in message.headers)
