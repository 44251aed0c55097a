"""ngrok's string and list macros for CEL that the `cel` package does not match as ngrok documents
them: split, lower/upper, format, the sortBy helper, and how values read as text.

Rules (ngrok's docs, `traffic-policy/macros/index.mdx`, sections String and Lists):
- `s.split()` splits at runs of whitespace; `s.split(sep)` at each `sep`; `s.split(sep, n)` keeps
  the first `n` pieces (the docs' examples: `'hello,mellow,hi'.split(',', 2)` is
  `['hello', 'mellow']`); a negative `n` keeps all.
- `lower()`/`upper()` map each character to its single-character case (Go's `unicode.ToLower`
  and `ToUpper`): `'İ'.lower()` is `'i'`, `'ß'.upper()` stays `'ß'`.
- `s.format(list)` understands `%s`, `%d`, `%f`/`%.Nf`, `%e`/`%.Ne`, `%b` (binary; a bool is 1 or
  0), `%x`/`%X` (an int, a string's or bytes' bytes), `%o` and `%%`.
- `list.sortBy(x, key)` is a macro (its key is an expression over each element); cel.py rewrites
  it to `list.map(x, [key, x])` followed by `sortPairs_()` here.
- The functions the `cel` package ships in `cel.stdlib` (charAt, indexOf, lastIndexOf, substring,
  replace, join, lowerAscii, upperAscii, trim, reverse, strings.quote, slice, flatten, sort,
  distinct, lists.range) already give the docs' results and are used as they are.
Values read as text (`%s`, `${...}`): strings as they are, bools as true/false, whole doubles
without a fraction, timestamps in RFC 3339, durations as Go writes them, bytes as UTF-8, lists
and maps as JSON (cel_codecs.json_encode).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .cel_codecs import cel_type_name, go_duration, json_encode, rfc3339
from .cel_errors import CelFunctionError


def split(text: Any, separator: Any = None, limit: Any = -1) -> list[str]:
    """'a,b'.split(',') -> ['a', 'b']; see the module's rules for the optional forms."""
    if not isinstance(text, str):
        raise CelFunctionError(f"split: expects a string, not {cel_type_name(text)}")
    if separator is None:
        pieces = text.split()
    elif not isinstance(separator, str):
        raise CelFunctionError(f"split: the separator must be a string, not {cel_type_name(separator)}")
    elif separator == "":
        pieces = list(text)
    else:
        pieces = text.split(separator)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise CelFunctionError("split: the count must be an int")
    return pieces if limit < 0 else pieces[:limit]


def lower(text: Any) -> str:
    """'ÉCOLE'.lower() -> 'école' (one character for one, as Go's unicode.ToLower)."""
    return "".join(_one_char(c, c.lower()) for c in _string(text, "lower"))


def upper(text: Any) -> str:
    """'école'.upper() -> 'ÉCOLE' (one character for one, as Go's unicode.ToUpper)."""
    return "".join(_one_char(c, c.upper()) for c in _string(text, "upper"))


def _one_char(original: str, mapped: str) -> str:
    if len(mapped) == 1:
        return mapped
    # Python's full mapping of U+0130 is "i" plus a combining dot; its simple mapping is "i".
    return "i" if original == "\u0130" else original


_VERB = re.compile(r"%(?:\.(\d+))?([sdfebxXo%])")


def format_string(template: Any, arguments: Any) -> str:
    """'hello %s'.format(['world']) -> 'hello world'."""
    text = _string(template, "format")
    if not isinstance(arguments, list):
        raise CelFunctionError("format: the arguments must be a list")
    used = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal used
        precision, verb = match.group(1), match.group(2)
        if verb == "%":
            return "%"
        if used >= len(arguments):
            raise CelFunctionError(f"format: {match.group(0)} has no argument (only {len(arguments)} given)")
        value = arguments[used]
        used += 1
        return _format_one(verb, None if precision is None else int(precision), value)

    result = _VERB.sub(replace, text)
    if used < len(arguments):
        raise CelFunctionError(f"format: {len(arguments)} arguments given for {used} clauses")
    return result


def _format_one(verb: str, precision: int | None, value: Any) -> str:
    if verb == "s":
        return text_of(value)
    if verb in "fe":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CelFunctionError(f"format: %{verb} needs a number, not {cel_type_name(value)}")
        return f"{float(value):.{6 if precision is None else precision}{verb}}"
    if verb == "b" and isinstance(value, bool):
        return "1" if value else "0"
    if verb in "xX" and isinstance(value, (str, bytes)):
        data = value.encode("utf-8") if isinstance(value, str) else value
        return data.hex() if verb == "x" else data.hex().upper()
    if isinstance(value, bool) or not isinstance(value, int):
        raise CelFunctionError(f"format: %{verb} needs an int, not {cel_type_name(value)}")
    return format(value, {"d": "d", "b": "b", "x": "x", "X": "X", "o": "o"}[verb])


def sort_pairs(pairs: Any) -> list[Any]:
    """The end of `list.sortBy(x, key)`: [[key, element], ...] -> the elements ordered by key."""
    if not isinstance(pairs, list):
        raise CelFunctionError("sortBy: expects a list")
    try:
        return [pair[1] for pair in sorted(pairs, key=lambda pair: _sort_key(pair[0]))]
    except TypeError:
        raise CelFunctionError("sortBy: the keys must all be of one comparable type") from None


def _sort_key(value: Any) -> Any:
    if isinstance(value, (list, dict)) or value is None:
        raise TypeError("not comparable")
    return value


def text_of(value: Any) -> str:
    """A CEL value as text, as `${...}` writes it (see the module's rules)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, dt.timedelta):
        return go_duration(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None:
        return "null"
    try:
        return json_encode(value)
    except CelFunctionError:
        return str(value)


def _string(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    raise CelFunctionError(f"{name}: expects a string, not {cel_type_name(value)}")
