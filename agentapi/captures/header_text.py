"""Header field bytes as text: the one place that turns captured header bytes into strings.

Rules:
- A header value (and name) is read as UTF-8, which is what clients and servers that send non-ASCII
  text send today (`X-User: André`, `filename="résumé.pdf"`). Bytes stay bytes in the capture; these
  functions only make text for showing.
- Bytes that are not UTF-8 get a visible fallback, one of two:
  - `api_text`, for the agent API: each byte that is not part of a valid UTF-8 sequence becomes
    U+FFFD, one per byte, which is what ngrok (Go's encoding/json) sends for a header string holding
    invalid UTF-8.
  - `display_text`, for the inspector, the admin and exports: each such byte becomes the four
    characters `\\xNN` (Python's backslashreplace), so `Andr\\xe9` shows that an ISO-8859-1 `é` was
    sent, which a U+FFFD would hide. (A literal backslash sent as such reads the same; the Raw tab and
    the download stay byte-exact for the rare case where that matters.)
- Parameters (`attachment; filename="a b.pdf"; filename*=UTF-8''a%20b.pdf`) follow RFC 9110 section
  5.6.6 (token or quoted-string values, backslash escapes) and RFC 8187 for `name*` extended values:
  `charset'language'percent-encoded`, charset UTF-8 or ISO-8859-1 (others when Python knows them).
  RFC 6266 says `filename*` wins over `filename` when both are given and it decodes.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

_GO_REPLACE = "agentapi-go-replace"


def _go_replace(error: UnicodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune gives (RuneError, 1) for an invalid sequence: one U+FFFD per byte, and
    # decoding starts again at the next byte (Python's "replace" swallows a cut sequence whole).
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\ufffd", error.start + 1


codecs.register_error(_GO_REPLACE, _go_replace)


def api_text(data: bytes) -> str:
    """UTF-8 text of header bytes for the agent API; invalid bytes are U+FFFD each, as in Go."""
    return data.decode("utf-8", _GO_REPLACE)


def display_text(data: bytes) -> str:
    """UTF-8 text of header bytes for people; invalid bytes are shown as `\\xNN`."""
    return data.decode("utf-8", "backslashreplace")


def exact_text(data: bytes) -> str | None:
    """The UTF-8 text of header bytes, or None when they are not UTF-8 (exports that must give the
    same bytes back, such as a curl command, then spell the bytes out)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def editable_text(data: bytes) -> str:
    """Header or target bytes as text to edit (the replay editor): UTF-8, with each byte that is
    not UTF-8 kept as a lone surrogate (Python's surrogateescape), so `editable_bytes` gives the
    exact bytes back after a round trip through JSON and the browser."""
    return data.decode("utf-8", "surrogateescape")


def editable_bytes(text: str) -> bytes:
    """The bytes of edited header or target text: UTF-8, escaped bytes restored (see above)."""
    return text.encode("utf-8", "surrogateescape")


def api_fields(fields: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(api_text(name), api_text(value)) for name, value in fields]


def display_fields(fields: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(display_text(name), display_text(value)) for name, value in fields]


# --- parameters -------------------------------------------------------------------------------
def split_parameters(value: str) -> tuple[str, list[tuple[str, str]]]:
    """(`the main value`, [(lower-case name, value)]) of `main; a=1; b="x \\"y\\""`.

    Quoted values lose their quotes and escapes; `name*` values are decoded (RFC 8187; kept as sent
    when they do not decode) and keep the `*` in their name. A parameter without `=` is kept with an
    empty value; nothing raises.
    """
    main, parameters = _raw_parameters(value)
    return main, [(name, _extended_or_as_is(name, text)) for name, text in parameters]


def _extended_or_as_is(name: str, text: str) -> str:
    decoded = decode_extended(text) if name.endswith("*") else None
    return text if decoded is None else decoded


def _raw_parameters(value: str) -> tuple[str, list[tuple[str, str]]]:
    main, pos = _until_semicolon(value, 0)
    parameters: list[tuple[str, str]] = []
    while pos < len(value):
        pos += 1  # the ";"
        name_end = pos
        while name_end < len(value) and value[name_end] not in "=;":
            name_end += 1
        name = value[pos:name_end].strip().lower()
        if name_end >= len(value) or value[name_end] == ";":
            if name:
                parameters.append((name, ""))
            pos = name_end
            continue
        pos = name_end + 1
        while pos < len(value) and value[pos] in " \t":
            pos += 1
        if pos < len(value) and value[pos] == '"':
            text, pos = _quoted(value, pos + 1)
            _, pos = _until_semicolon(value, pos)  # anything after the closing quote is ignored
        else:
            text, pos = _until_semicolon(value, pos)
        if name:
            parameters.append((name, text))
    return main, parameters


def _until_semicolon(value: str, pos: int) -> tuple[str, int]:
    end = value.find(";", pos)
    end = len(value) if end < 0 else end
    return value[pos:end].strip(), end


def _quoted(value: str, pos: int) -> tuple[str, int]:
    out = []
    while pos < len(value):
        char = value[pos]
        if char == "\\" and pos + 1 < len(value):
            out.append(value[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    return "".join(out), pos  # no closing quote: what there is


def decode_extended(text: str) -> str | None:
    """An RFC 8187 ext-value (`UTF-8'en'%E2%82%AC%20rates`) as text; None when it is not one.

    The percent-decoded bytes are read in the charset named; bytes that are not valid in it get the
    display fallback (`\\xNN`); an unknown charset is read as UTF-8.
    """
    charset, quote, rest = text.partition("'")
    _language, quote2, encoded = rest.partition("'")
    if not quote or not quote2 or not charset:
        return None
    data = unquote_to_bytes(encoded)
    try:
        return data.decode(charset.strip(), "backslashreplace")
    except LookupError:
        return display_text(data)


def parameter(value: str, name: str) -> str | None:
    """The parameter `name` of a header value, its `name*` form first (RFC 6266 section 4.3)."""
    _, parameters = _raw_parameters(value)
    found = dict(reversed(parameters))  # the first of repeated names wins
    name = name.lower()
    extended = found.get(name + "*")
    decoded = decode_extended(extended) if extended is not None else None
    if decoded is not None:
        return decoded
    return found.get(name, extended)


def disposition_filename(value: str) -> str | None:
    """The file name a Content-Disposition value gives (`filename*` first), or None."""
    return parameter(value, "filename")
