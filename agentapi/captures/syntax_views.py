"""JSON, XML and HTML content views: the syntax checked on the whole body, only the drawing cut.

Rules:
- The check reads every captured byte (body_text.whole_text): valid JSON of any size up to
  AGENT_DECODED_BODY_LIMIT is never called broken because the drawing stops at MAX_TEXT.
- JSON (RFC 8259) is checked with `json.loads` and drawn re-indented from its own tokens, two
  spaces a level as `json.dumps(indent=2)` would: numbers, key order and repeated keys stay as sent
  (re-encoding the parsed value would turn 1.10 into 1.1 and keep one of two equal keys). A string
  with a `\\uXXXX` escape is drawn unescaped ("J\\u00fcrgen" reads "Jürgen"), as its value is.
- XML is checked by expat over all of the bytes (no external entities are fetched; expat limits
  entity expansion). Up to XML_PRETTY_LIMIT bytes it is drawn pretty-printed by minidom; above that
  it is drawn as sent (minidom takes ~3 s a MB and holds ~50 bytes per byte of input).
- HTML has no syntax errors (the WHATWG parser recovers from anything): it is drawn as sent.
- A body that does not check is drawn as sent with the error's line, column and character offset;
  when the error lies past what is drawn, the drawing is the MAX_TEXT characters around it, starting
  on a line boundary, and says which (`first_line`, `start`).
- A body cut by a limit (`Body.complete` False) that fails only at its end failed at the cut: it is
  drawn without an error, and says so. "At its end" is a heuristic: within one token of the end, or
  a string still open there.
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.dom import minidom
from xml.parsers import expat

from .body_text import MAX_TEXT, Body, cut_for_display, decode_text, whole_text

Rendered = dict[str, Any]
XML_PRETTY_LIMIT = 128 * 1024
# How near the end of a cut body an error must be to count as the cut (a token's length).
_CUT_SLACK = 16


def _checked(body: Body) -> str:
    return f"syntax checked over all {len(body.data):,} bytes"


def _cut_body_note(body: Body) -> str:
    return f"the body was cut at {len(body.data):,} bytes (a capture limit): checked up to the cut, no error before it"


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _error_view(view: str, text: str, message: str, line: int, column: int, offset: int) -> Rendered:
    """The text as sent with the error located; cut around the error when the text is long.

    `error.offset` is a character offset into the drawn `text`; `start` is where that text starts
    in the whole body's text and `first_line` the (1-based) line it starts on."""
    start = 0
    note = ""
    first_line = 1
    if len(text) > MAX_TEXT:
        start = max(0, min(offset - MAX_TEXT // 2, len(text) - MAX_TEXT))
        # On a line boundary when there is one near: a long single line is cut where it must be.
        newline = text.rfind("\n", max(0, start - 4096), start)
        start = newline + 1 if newline >= 0 else start
        end = min(len(text), start + MAX_TEXT)
        first_line = 1 + text.count("\n", 0, start)
        note = f"showing characters {start:,} to {end:,} of {len(text):,}, around the error"
        text = text[start:end]
    return {
        "view": view,
        "text": text,
        "error": {"message": message, "line": line, "column": column, "offset": offset - start},
        "start": start,
        "first_line": first_line,
        "note": note,
    }


# --- JSON ---------------------------------------------------------------------------------------
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')


def pretty_json(text: str, limit: int = MAX_TEXT) -> tuple[str, bool]:
    """(JSON text re-indented two spaces a level from its own tokens, whether it stopped at `limit`
    characters). Expects checked JSON, or a prefix of it; never raises."""
    out: list[str] = []
    size = 0
    depth = 0
    opened = False  # the last token opened a container: "{}" and "[]" stay on one line
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if opened:
            opened = False
            if token in ("}", "]"):
                out.append(token)
                size += 1
                continue
            depth += 1
            piece = "\n" + "  " * depth
            out.append(piece)
            size += len(piece)
        if token in ("{", "["):
            opened = True
            piece = token
        elif token in ("}", "]"):
            depth = max(0, depth - 1)
            piece = "\n" + "  " * depth + token
        elif token == ",":
            piece = ",\n" + "  " * depth
        elif token == ":":
            piece = ": "
        elif token[0] == '"' and "\\u" in token:
            piece = _unescaped(token)
        else:
            piece = token
        out.append(piece)
        size += len(piece)
        if size >= limit:
            return "".join(out)[:limit], True
    return "".join(out), False


def _unescaped(token: str) -> str:
    try:
        return json.dumps(json.loads(token), ensure_ascii=False)
    except ValueError:  # a lone surrogate escape and the like: as sent
        return token


def render_json(body: Body, fallback: Any) -> Rendered:
    text = whole_text(body)
    if text is None:
        return dict(fallback(body))
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        at_cut = not body.complete and (
            error.pos >= len(text.rstrip()) - _CUT_SLACK or error.msg.startswith("Unterminated string")
        )
        if not at_cut:
            return _error_view("json", text, error.msg, error.lineno, error.colno, error.pos)
        pretty, stopped = pretty_json(text)
        note = _join(_cut_body_note(body), "showing the first part of the formatted body" if stopped else "")
        return {"view": "json", "text": pretty, "note": note, "checked": _checked(body)}
    pretty, stopped = pretty_json(text)
    note = f"showing the first {len(pretty):,} characters of the formatted body" if stopped else ""
    return {"view": "json", "text": pretty, "note": note, "checked": _checked(body)}


# --- XML ----------------------------------------------------------------------------------------
def _offset_of(text: str, line: int, column: int) -> int:
    """Character offset of a 1-based line and 0-based column."""
    offset = 0
    for _ in range(line - 1):
        newline = text.find("\n", offset)
        if newline < 0:
            return len(text)
        offset = newline + 1
    return min(offset + column, len(text))


def render_xml(body: Body, fallback: Any) -> Rendered:
    text = whole_text(body)
    if text is None:
        return dict(fallback(body))
    parser = expat.ParserCreate()
    try:
        parser.Parse(body.data, True)
    except expat.ExpatError as error:
        line, column = error.lineno, error.offset
        offset = _offset_of(text, line, column)
        if body.complete or offset < len(text.rstrip()) - _CUT_SLACK:
            message = expat.errors.messages[error.code] if error.code else str(error).split(":", 1)[0]
            return _error_view("xml", text, message, line, column + 1, offset)
        shown, note = cut_for_display(text)
        return {"view": "xml", "text": shown, "note": _join(_cut_body_note(body), note), "checked": _checked(body)}
    if len(body.data) > XML_PRETTY_LIMIT:
        shown, note = cut_for_display(text)
        note = _join(f"over {XML_PRETTY_LIMIT:,} bytes: shown as sent, not re-indented", note)
        return {"view": "xml", "text": shown, "note": note, "checked": _checked(body)}
    pretty = minidom.parseString(body.data).toprettyxml(indent="  ")
    pretty = "\n".join(line for line in pretty.splitlines() if line.strip())
    shown, note = cut_for_display(pretty)
    return {"view": "xml", "text": shown, "note": note, "checked": _checked(body)}


# --- HTML ---------------------------------------------------------------------------------------
def render_html(body: Body, fallback: Any) -> Rendered:
    text = decode_text(body)
    if text is None:
        return dict(fallback(body))
    shown, note = cut_for_display(whole_text(body) or text)
    return {"view": "html", "text": shown, "note": note}
