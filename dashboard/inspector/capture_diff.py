"""The diff of two captures (a replay against its original, or any two): request and response,
start line, headers and body, side by side.

Rules:
- Messages are compared as the detail shows them: header text from header_text (UTF-8, `\\xNN`
  for other bytes), bodies de-chunked and with their content coding undone (message_body), so a
  gzip body and its plain replay compare by content.
- Headers are matched by name, case-insensitively, in the order of `a` then the names only `b`
  has. A name's values are compared as a list in wire order: `same`, `changed`, `added` (only in
  b), `removed` (only in a).
- Bodies: when both parse as JSON they are compared as JSON: pretty-printed with sorted keys (key
  order and whitespace are not differences), their lines diffed, and each changed value listed by
  its path (`$.data.amount`, `$.items[2]`), up to `MAX_CHANGES`. Otherwise UTF-8 text is diffed by
  lines; anything else (not UTF-8, NUL bytes) is compared as bytes: equal or not, sizes, SHA-256
  and the first differing offset.
- Line diffs are difflib's (no junk heuristic), grouped into hunks with `CONTEXT` unchanged lines
  around each change; each hunk is rows of `equal`, `replace`, `delete` or `insert` with the lines
  of each side. Text past `TEXT_LIMIT` characters a side is not diffed (`cut` says so), as the
  detail view cuts what it draws.
- `b` missing a response (pending, or the agent's own refusal) gives `response: null` and a note.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any

from agentapi.captures.message_body import Message, parse_message
from agentapi.captures.summary import summary
from agentapi.models import Capture

CONTEXT = 3
TEXT_LIMIT = 256 * 1024
MAX_CHANGES = 200


def capture_diff(a: Capture, b: Capture) -> dict[str, Any]:
    """{"a": summary, "b": summary, "request": side, "response": side or None, "notes": [...]}."""
    notes = []
    response = None
    if a.response_raw is not None and b.response_raw is not None:
        response = message_diff(
            parse_message(bytes(a.response_raw), response=True), parse_message(bytes(b.response_raw), response=True)
        )
    else:
        missing = " and ".join(label for label, c in (("a", a), ("b", b)) if c.response_raw is None)
        notes.append(f"no response to compare: {missing} has none")
    return {
        "a": summary(a),
        "b": summary(b),
        "request": message_diff(
            parse_message(bytes(a.request_raw), response=False), parse_message(bytes(b.request_raw), response=False)
        ),
        "response": response,
        "notes": notes,
    }


def message_diff(a: Message, b: Message) -> dict[str, Any]:
    """{"start_line": {"a", "b", "same"}, "headers": [...], "body": {...}, "same": bool}."""
    start_a, start_b = _start_line(a), _start_line(b)
    headers = header_diff(a.headers, b.headers)
    body = body_diff(a.decoded_body, b.decoded_body)
    same = start_a == start_b and all(row["change"] == "same" for row in headers) and body["same"]
    return {
        "start_line": {"a": start_a, "b": start_b, "same": start_a == start_b},
        "headers": headers,
        "body": body,
        "same": same,
    }


def _start_line(message: Message) -> str:
    head = message.head
    if head.method:
        return f"{head.method} {head.target} HTTP/{head.version}"
    return f"HTTP/{head.version} {head.status} {head.reason}".rstrip()


def header_diff(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One row per header name: {"name", "a": [values], "b": [values], "change"}."""
    names: dict[str, str] = {}
    for name, _ in [*a, *b]:
        names.setdefault(name.lower(), name)
    rows = []
    for lower, name in names.items():
        values_a = [value for key, value in a if key.lower() == lower]
        values_b = [value for key, value in b if key.lower() == lower]
        if not values_a:
            change = "added"
        elif not values_b:
            change = "removed"
        else:
            change = "same" if values_a == values_b else "changed"
        rows.append({"name": name, "a": values_a, "b": values_b, "change": change})
    return rows


def body_diff(a: bytes, b: bytes) -> dict[str, Any]:
    """{"kind": "json" | "text" | "binary" | "empty", "same", "a_size", "b_size", ...}: for json
    and text `hunks` and `cut`, for json `changes` too, for binary `sha256` and `first_difference`."""
    result: dict[str, Any] = {"a_size": len(a), "b_size": len(b), "same": a == b}
    if not a and not b:
        return {**result, "kind": "empty"}
    doc_a, doc_b = _json(a), _json(b)
    if doc_a is not None and doc_b is not None:
        value_a, value_b = doc_a[0], doc_b[0]
        changes: list[dict[str, Any]] = []
        _json_changes(value_a, value_b, "$", changes)
        pretty_a, pretty_b = (json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False) for v in (value_a, value_b))
        return {
            **result,
            "kind": "json",
            "same": value_a == value_b,  # the same document, however it was spelled
            "changes": changes[:MAX_CHANGES],
            "more_changes": max(len(changes) - MAX_CHANGES, 0),
            **line_diff(pretty_a, pretty_b),
        }
    text_a, text_b = _text(a), _text(b)
    if text_a is not None and text_b is not None:
        return {**result, "kind": "text", **line_diff(text_a, text_b)}
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return {
        **result,
        "kind": "binary",
        "sha256": [hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest()],
        "first_difference": None if a == b else first,
    }


def _json(data: bytes) -> tuple[Any] | None:
    """The parsed document in a 1-tuple (a JSON `null` is a document too), or None."""
    if not data.strip():
        return None
    try:
        return (json.loads(data),)
    except (ValueError, RecursionError):
        return None


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _json_changes(a: Any, b: Any, path: str, out: list[dict[str, Any]]) -> None:
    """Each value that differs between two JSON documents, by path (stops past MAX_CHANGES + 1)."""
    if len(out) > MAX_CHANGES:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            child = f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key, ensure_ascii=False)}]"
            if key not in b:
                out.append({"path": child, "change": "removed", "a": _shown(a[key]), "b": None})
            elif key not in a:
                out.append({"path": child, "change": "added", "a": None, "b": _shown(b[key])})
            else:
                _json_changes(a[key], b[key], child, out)
    elif isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            child = f"{path}[{index}]"
            if index >= len(b):
                out.append({"path": child, "change": "removed", "a": _shown(a[index]), "b": None})
            elif index >= len(a):
                out.append({"path": child, "change": "added", "a": None, "b": _shown(b[index])})
            else:
                _json_changes(a[index], b[index], child, out)
    elif a != b or type(a) is not type(b):  # 1 and 1.0, true and 1 are different JSON
        out.append({"path": path, "change": "changed", "a": _shown(a), "b": _shown(b)})


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:199] + "…"


def line_diff(a: str, b: str) -> dict[str, Any]:
    """{"hunks": [{"a_start", "b_start", "rows": [{"op", "a": [lines], "b": [lines]}]}], "cut"}.
    Line numbers start at 1; text past TEXT_LIMIT a side is left out and `cut` is true."""
    cut = len(a) > TEXT_LIMIT or len(b) > TEXT_LIMIT
    lines_a, lines_b = a[:TEXT_LIMIT].splitlines(), b[:TEXT_LIMIT].splitlines()
    matcher = difflib.SequenceMatcher(None, lines_a, lines_b, autojunk=False)
    hunks = []
    for group in matcher.get_grouped_opcodes(CONTEXT):
        rows = [{"op": op, "a": lines_a[i1:i2], "b": lines_b[j1:j2]} for op, i1, i2, j1, j2 in group]
        hunks.append({"a_start": group[0][1] + 1, "b_start": group[0][3] + 1, "rows": rows})
    return {"hunks": hunks, "cut": cut}
