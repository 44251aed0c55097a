"""ngrok's encoding macros for CEL: hash.*, json.*, base64.*, url.*, queryString.*, basic_auth.encode
and their method forms (`'x'.sha256()`, `'x'.decodeJson()`, `{...}.encodeQueryString()`).

Rules (ngrok's docs, `traffic-policy/macros/index.mdx`, sections Base64, Basic Auth, Hash, JSON, Query
string, String, URL; ngrok runs Go, so where the docs are silent Go's standard library decides):
- Hashes take a string (its UTF-8 bytes) and an optional format, "hex" (the default) or "base64"
  (standard alphabet, padded). crc32 is IEEE, crc64 is ISO (Go's `hash/crc64` ISO table, the
  checksum inverted before and after), xxhash64 has seed 0; all are big-endian digests.
- json.encode is Go's `json.Marshal`: compact, map keys sorted, `<`, `>`, `&`, U+2028 and U+2029
  escaped, bytes as base64, timestamps as RFC 3339. json.decode gives maps, lists, strings, numbers
  (whole numbers as int), booleans and null.
- url.escape is Go's `url.QueryEscape` (only `A-Za-z0-9-_.~` kept, a space as `+`); url.unescape is
  `url.QueryUnescape` (a bad `%` escape is an error).
- queryString.decode gives each key's first value; queryString.encode sorts keys (Go's
  `url.Values.Encode`) and repeats a key for each value of a list.
- url.parse / parseUrl give Go's `net/url.URL` fields in snake case.
Every function raises CelFunctionError with a short reason on bad input.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote, unquote_plus, urlsplit

import xxhash

from .cel_errors import CelFunctionError


def _crc64_table() -> list[int]:
    # Go's hash/crc64 ISO polynomial in reversed (LSB-first) form.
    polynomial = 0xD800000000000000
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64_ISO = _crc64_table()
_MASK64 = (1 << 64) - 1


def crc64_iso(data: bytes) -> int:
    """Go's `crc64.Checksum(data, crc64.MakeTable(crc64.ISO))`."""
    crc = _MASK64
    for byte in data:
        crc = _CRC64_ISO[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "md5": lambda data: hashlib.md5(data, usedforsecurity=False).digest(),
    "sha1": lambda data: hashlib.sha1(data, usedforsecurity=False).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sha512": lambda data: hashlib.sha512(data).digest(),
    "crc32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "crc64": lambda data: crc64_iso(data).to_bytes(8, "big"),
    "xxhash64": lambda data: xxhash.xxh64_digest(data),
}
HASH_NAMES = tuple(_DIGESTS)


def make_hash(name: str) -> Callable[..., str]:
    """hash.<name>(string, format?) -> the digest as hex or base64."""
    digest = _DIGESTS[name]

    def hash_function(value: Any, output: str = "hex") -> str:
        data = _text(value, f"hash.{name}").encode("utf-8", "surrogatepass")
        raw = digest(data)
        if output == "hex":
            return raw.hex()
        if output == "base64":
            return base64.b64encode(raw).decode("ascii")
        raise CelFunctionError(f"hash.{name}: the format must be 'hex' or 'base64', not {output!r}")

    hash_function.__name__ = f"hash_{name}"
    return hash_function


def base64_encode(value: Any) -> str:
    """base64.encode(bytes) -> string; a string is encoded as its UTF-8 bytes."""
    data = value if isinstance(value, bytes) else _text(value, "base64.encode").encode("utf-8", "surrogatepass")
    return base64.b64encode(data).decode("ascii")


def base64_decode(value: Any) -> bytes:
    """base64.decode(string) -> bytes; padding is required, as in Go's StdEncoding."""
    text = _text(value, "base64.decode")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CelFunctionError(f"base64.decode: {text[:64]!r} is not valid base64") from None


def decode_base64_text(value: Any) -> str:
    """'...'.decodeBase64() -> the decoded bytes as a string."""
    return base64_decode(value).decode("utf-8", "replace")


def basic_auth_encode(user: Any, password: Any) -> str:
    """basic_auth.encode(username, password) -> 'Basic <base64 of user:password>'."""
    pair = f"{_text(user, 'basic_auth.encode')}:{_text(password, 'basic_auth.encode')}"
    return "Basic " + base64.b64encode(pair.encode("utf-8", "surrogatepass")).decode("ascii")


def json_encode(value: Any) -> str:
    """json.encode(value) -> compact JSON with sorted keys, as Go's json.Marshal writes it."""
    try:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as error:
        raise CelFunctionError(f"json.encode: {error}") from None
    # Go escapes these for safe embedding in HTML; they occur only inside JSON strings.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def json_decode(value: Any) -> Any:
    """json.decode(string) -> the map, list or value it holds."""
    text = _text(value, "json.decode")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CelFunctionError(f"json.decode: not valid JSON: {error.msg} at column {error.colno}") from None


def is_json(value: Any) -> bool:
    """'...'.isJson() -> whether the string is valid JSON."""
    try:
        json.loads(_text(value, "isJson"))
    except json.JSONDecodeError:
        return False
    return True


def url_escape(value: Any) -> str:
    """url.escape(string) / '...'.escapeUrl(): Go's url.QueryEscape."""
    return quote_plus(_text(value, "url.escape"), safe="")


def url_unescape(value: Any) -> str:
    """url.unescape(string) / '...'.unescapeUrl(): Go's url.QueryUnescape."""
    text = _text(value, "url.unescape")
    index = text.find("%")
    while index >= 0:
        if len(text) < index + 3 or not all(c in "0123456789abcdefABCDEF" for c in text[index + 1 : index + 3]):
            raise CelFunctionError(f"url.unescape: invalid escape {text[index : index + 3]!r}")
        index = text.find("%", index + 3)
    return unquote_plus(text, errors="replace")


def url_parse(value: Any) -> dict[str, Any]:
    """url.parse(string) / '...'.parseUrl() -> Go's net/url.URL fields, e.g. {scheme, host, path}."""
    text = _text(value, "url.parse")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port that is not a number
    except ValueError as error:
        raise CelFunctionError(f"url.parse: {error}") from None
    del port
    user = ""
    host = parts.netloc
    if "@" in host:
        user, _, host = host.rpartition("@")
    opaque = "" if parts.netloc or text[len(parts.scheme) + 1 :].startswith("/") or not parts.scheme else parts.path
    path = "" if opaque else parts.path
    decoded = url_unescape_path(path)
    return {
        "scheme": parts.scheme.lower(),
        "opaque": opaque,
        "user": user,
        "host": host,
        "path": decoded,
        "raw_path": path if decoded != path else "",
        "raw_query": parts.query,
        "fragment": url_unescape_path(parts.fragment),
    }


def url_unescape_path(text: str) -> str:
    """Percent-decoding of a path (`+` stays `+`); bytes that are not UTF-8 become U+FFFD."""
    if "%" not in text:
        return text
    return unquote(text, errors="replace")


def is_url(value: Any) -> bool:
    """'...'.isURL() -> whether the string is an absolute URL with a scheme and a host."""
    try:
        parts = urlsplit(_text(value, "isURL"))
        parts.port  # noqa: B018 - a port that is not a number raises
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc) and " " not in parts.netloc


def query_decode(value: Any) -> dict[str, str]:
    """queryString.decode(string) / '...'.decodeQueryString() -> {key: first value}."""
    text = _text(value, "queryString.decode")
    result: dict[str, str] = {}
    for key, item in parse_qsl(text, keep_blank_values=True):
        result.setdefault(key, item)
    return result


def query_encode(value: Any) -> str:
    """queryString.encode(map) / {...}.encodeQueryString() -> `a=b&c=d`, keys sorted."""
    if not isinstance(value, dict):
        raise CelFunctionError("queryString.encode: expects a map")
    parts = []
    for key in sorted(value, key=str):
        items = value[key] if isinstance(value[key], list) else [value[key]]
        for item in items:
            parts.append(f"{quote_plus(_scalar(key), safe='')}={quote_plus(_scalar(item), safe='')}")
    return "&".join(parts)


def is_query_string(value: Any) -> bool:
    """'...'.isQueryString() -> whether the string is `key=value` pairs joined by `&`."""
    text = _text(value, "isQueryString")
    if not text:
        return False
    for pair in text.split("&"):
        key, equals, item = pair.partition("=")
        if not key or not equals or any(c in " \t\r\n" for c in pair):
            return False
        if "%" in pair:
            try:
                url_unescape(key)
                url_unescape(item)
            except CelFunctionError:
                return False
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, dt.timedelta):
        return go_duration(value)
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON")


def rfc3339(value: dt.datetime) -> str:
    """A timestamp as Go's time.RFC3339Nano writes it in UTC: `2024-06-24T15:30:00Z`."""
    utc = value.astimezone(dt.UTC) if value.tzinfo else value
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def go_duration(value: dt.timedelta) -> str:
    """A duration as Go's time.Duration.String writes it: `1h30m0s`, `1.5s`, `0s`."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000_000:
        if micros < 1000:
            return f"{sign}{micros}µs"
        return f"{sign}{_trim(micros / 1000)}ms"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds = _trim(rest / 1_000_000)
    text = f"{hours}h{minutes}m{seconds}s" if hours else f"{minutes}m{seconds}s" if minutes else f"{seconds}s"
    return sign + text


def _trim(number: float) -> str:
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    raise CelFunctionError(f"{name}: expects a string, not {cel_type_name(value)}")


def cel_type_name(value: Any) -> str:
    """The CEL name of a Python value's type, for messages: string, int, list, map..."""
    names = {
        bool: "bool",
        int: "int",
        float: "double",
        str: "string",
        bytes: "bytes",
        list: "list",
        dict: "map",
        dt.datetime: "timestamp",
        dt.timedelta: "duration",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
