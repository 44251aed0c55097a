"""CEL source text read as tokens, and config strings split at their `${...}` parts.

The evaluator (cel.py) compiles each expression with the `cel` package first, so its syntax errors
are the parser's. This lexer runs on text that already parsed: it finds the names an expression
uses (variables, functions, methods) so they can be checked and rewritten. Rules (the CEL
language definition, github.com/google/cel-spec `doc/langdef.md`, "Syntax"):
- Identifiers are `[_a-zA-Z][_a-zA-Z0-9]*`; `true`, `false`, `null` and `in` are reserved.
- String literals are quoted with `'`, `"`, `'''` or `\"\"\"`, with an optional `r` (raw: no
  escapes) and/or `b` (bytes) prefix in either case. A backslash escapes the next character
  outside raw strings.
- Numbers: decimal or `0x` hex integers with an optional `u`, and floats (`1.5`, `1e3`, `.5`).
- `//` starts a comment to the end of the line.

`${...}` interpolation (ngrok's `traffic-policy/how-it-works.mdx`, "CEL Interpolation"): each
`${` opens an expression that ends at the `}` that balances it, so braces of CEL map literals and
braces inside CEL string literals do not end it. ngrok documents no escape for a literal `${`;
write it as a CEL string inside an interpolation: `${'${'}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import PolicyError


class Kind(Enum):
    IDENT = "identifier"
    STRING = "string"
    BYTES = "bytes"
    NUMBER = "number"
    PUNCT = "punctuation"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its text as written, and where it starts and ends in the source.

    `value` is the decoded text of a string literal that has no escapes (None otherwise), so a
    constant map key such as `req.headers['x-id']` can be read without a full unescape.
    """

    kind: Kind
    text: str
    start: int
    end: int
    value: str | None = None


RESERVED = frozenset({"true", "false", "null", "in"})
_PUNCT3 = ("...",)
_PUNCT2 = ("==", "!=", "<=", ">=", "&&", "||")
_PUNCT1 = frozenset("()[]{}.,?:+-*/%<>!")
_IDENT_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_IDENT_PART = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


def tokenize(text: str, start: int = 0, *, stop_at_close: bool = False) -> tuple[list[Token], int]:
    """The tokens of `text` from `start`, and the offset where reading stopped.

    With `stop_at_close`, reading stops before the first `}` that no `{` opened (the end of a
    `${...}` part); without it, at the end of the text. Raises PolicyError for a string that is
    never closed or a character CEL does not use, with the column.
    """
    tokens: list[Token] = []
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n\f\v":
            i += 1
            continue
        if text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        string = _string_at(text, i)
        if string is not None:
            tokens.append(string)
            i = string.end
            continue
        if c in _IDENT_START:
            j = i + 1
            while j < n and text[j] in _IDENT_PART:
                j += 1
            tokens.append(Token(Kind.IDENT, text[i:j], i, j))
            i = j
            continue
        if c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            j = _number_end(text, i)
            tokens.append(Token(Kind.NUMBER, text[i:j], i, j))
            i = j
            continue
        if c == "}" and stop_at_close and depth == 0:
            return tokens, i
        if c in "{":
            depth += 1
        elif c == "}":
            depth -= 1
        for punct in (*_PUNCT3, *_PUNCT2):
            if text.startswith(punct, i):
                tokens.append(Token(Kind.PUNCT, punct, i, i + len(punct)))
                i += len(punct)
                break
        else:
            if c not in _PUNCT1:
                raise PolicyError(f"unexpected character {c!r}{position(text, i)}")
            tokens.append(Token(Kind.PUNCT, c, i, i + 1))
            i += 1
    return tokens, i


def split_template(text: str) -> list[str | tuple[int, str]]:
    """A config string cut into literal text (str) and `${...}` parts ((offset, source)).

    `offset` is where the part's source starts in `text`. Raises PolicyError for a `${` that is
    never closed or an empty `${}`, with the column.
    """
    pieces: list[str | tuple[int, str]] = []
    i = 0
    while True:
        opening = text.find("${", i)
        if opening < 0:
            if i < len(text):
                pieces.append(text[i:])
            return pieces
        if opening > i:
            pieces.append(text[i:opening])
        body = opening + 2
        _, end = tokenize(text, body, stop_at_close=True)
        if end >= len(text):
            raise PolicyError(f"'${{' is never closed by '}}'{position(text, opening)}")
        source = text[body:end]
        if not source.strip():
            raise PolicyError(f"'${{}}' holds no expression{position(text, opening)}")
        pieces.append((body, source))
        i = end + 1


def position(text: str, offset: int) -> str:
    """` (column N)` for an offset in one-line text, ` (line L, column N)` past the first line."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f" (column {column})" if line == 1 else f" (line {line}, column {column})"


def _string_at(text: str, i: int) -> Token | None:
    # A prefix of r/R and/or b/B, at most one of each, then a quote.
    j = i
    raw = is_bytes = False
    while j < len(text) and j - i < 2 and text[j] in "rRbB":
        if text[j] in "rR":
            if raw:
                return None
            raw = True
        else:
            if is_bytes:
                return None
            is_bytes = True
        j += 1
    if j >= len(text) or text[j] not in "'\"":
        return None
    if j > i and i > 0 and text[i - 1] in _IDENT_PART:
        return None  # the r/b is the end of an identifier, e.g. `bar'`: not a prefix
    quote = text[j] * 3 if text.startswith(text[j] * 3, j) else text[j]
    k = j + len(quote)
    while k < len(text):
        if text.startswith(quote, k):
            body = text[j + len(quote) : k]
            end = k + len(quote)
            kind = Kind.BYTES if is_bytes else Kind.STRING
            plain = raw or "\\" not in body
            return Token(kind, text[i:end], i, end, body if plain and not is_bytes else None)
        if text[k] == "\\" and not raw:
            k += 2
            continue
        if len(quote) == 1 and text[k] == "\n":
            break
        k += 1
    raise PolicyError(f"a string literal is never closed{position(text, i)}")


def _number_end(text: str, i: int) -> int:
    n = len(text)
    if text.startswith(("0x", "0X"), i):
        j = i + 2
        while j < n and text[j] in _HEX:
            j += 1
        return j + 1 if j < n and text[j] in "uU" else j
    j = i
    while j < n and text[j] in _DIGITS:
        j += 1
    is_float = False
    if j < n and text[j] == "." and j + 1 < n and text[j + 1] in _DIGITS:
        is_float = True
        j += 1
        while j < n and text[j] in _DIGITS:
            j += 1
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k] in _DIGITS:
            is_float = True
            j = k
            while j < n and text[j] in _DIGITS:
                j += 1
    if not is_float and j < n and text[j] in "uU":
        j += 1
    return j
