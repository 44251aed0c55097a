"""HTTP header values read into the shapes ngrok's CEL variables have: cookies, Set-Cookie
attributes, media types, content codings, and a request's URL parts.

Rules:
- `Cookie` (RFC 6265 5.4): `name=value` pairs separated by `;`; a value in double quotes loses
  them; a pair without `=` or with an empty name is skipped. ngrok's `req.cookies` maps each name to
  its cookies in header order (`snippets/traffic-policy/variables/req.mdx`).
- `Set-Cookie` (RFC 6265 5.2): the first pair is the cookie; `Domain`, `Path`, `Expires` (an HTTP
  date), `Max-Age` (seconds), `Secure`, `HttpOnly` and `SameSite` are read, case-insensitively;
  any other attribute goes to `unparsed_attributes`. ngrok's `res.cookies` orders a name's
  cookies longest path first (`snippets/traffic-policy/variables/res.mdx`).
- Media type (RFC 9110 8.3.1): type/subtype lower-cased, parameter names lower-cased, quoted values
  unquoted (Go's `mime.ParseMediaType`, which ngrok's `content_type.parameters` comes from).
- Content codings (RFC 9110 8.4): a comma-separated list, lower-cased.
- A request's URL: origin-form targets (`/path?q`) are joined to the public scheme and the Host
  field; absolute-form targets are read as they are. `path` is percent-decoded, `raw_path` is as
  received; `query_params` maps each name to its values (`+` is a space, as Go's `url.ParseQuery`).
"""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_SAME_SITE = {"lax": "Lax", "strict": "Strict", "none": "None"}


def request_cookies(header_values: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The `Cookie` fields' cookies by name: {"session": [{"name": ..., "value": ...}]}."""
    jar: dict[str, list[dict[str, Any]]] = {}
    for header in header_values:
        for pair in header.split(";"):
            name, equals, value = pair.strip().partition("=")
            name = name.strip()
            if not equals or not name:
                continue
            jar.setdefault(name, []).append(_cookie(name, _unquote(value.strip())))
    return jar


def response_cookies(header_values: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The `Set-Cookie` fields' cookies by name, each name's longest path first."""
    jar: dict[str, list[dict[str, Any]]] = {}
    for header in header_values:
        first, *attributes = header.split(";")
        name, equals, value = first.strip().partition("=")
        name = name.strip()
        if not equals or not name:
            continue
        cookie = _cookie(name, _unquote(value.strip()))
        unparsed: dict[str, str] = cookie["unparsed_attributes"]
        for attribute in attributes:
            key, _, raw = attribute.strip().partition("=")
            lower, raw = key.strip().lower(), raw.strip()
            if not lower:
                continue
            if lower in ("domain", "path"):
                cookie[lower] = raw
            elif lower == "secure":
                cookie["secure"] = True
            elif lower == "httponly":
                cookie["http_only"] = True
            elif lower == "samesite":
                cookie["same_site"] = _SAME_SITE.get(raw.lower(), "")
            elif lower == "max-age" and raw.lstrip("-").isdigit():
                cookie["max_age"] = dt.timedelta(seconds=int(raw))
            elif lower == "expires" and _http_date(raw) is not None:
                cookie["expires"] = _http_date(raw)
            else:
                unparsed[key.strip()] = raw
        jar.setdefault(name, []).append(cookie)
    for cookies in jar.values():
        cookies.sort(key=lambda c: -len(c["path"]))
    return jar


def _cookie(name: str, value: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "path": "",
        "domain": "",
        "secure": False,
        "http_only": False,
        "same_site": "",
        "unparsed_attributes": {},
    }


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _http_date(text: str) -> dt.datetime | None:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def media_type(value: str) -> tuple[str, dict[str, str]]:
    """`Text/HTML; Charset="utf-8"` -> ("text/html", {"charset": "utf-8"})."""
    main, *parameters = value.split(";")
    result: dict[str, str] = {}
    for parameter in parameters:
        key, equals, item = parameter.strip().partition("=")
        if equals and key.strip():
            result[key.strip().lower()] = _unquote(item.strip())
    return main.strip().lower(), result


def content_codings(header_values: list[str]) -> list[str]:
    """`gzip, BR` -> ["gzip", "br"]."""
    return [coding.strip().lower() for value in header_values for coding in value.split(",") if coding.strip()]


def url_parts(scheme: str, host: str, target: str) -> dict[str, Any]:
    """ngrok's `req.url.*` fields but `query_params` (see `query_params`), plus the full URL under
    the key "": see the module's rules."""
    if "://" in target.split("?", 1)[0]:
        raw = target
        split = urlsplit(target)
        scheme, authority = split.scheme.lower() or scheme, split.netloc
        raw_path, query = split.path or "/", split.query
    else:
        authority = host
        raw_path, _, query = target.split("#", 1)[0].partition("?")
        raw = f"{scheme}://{host}{target}"
    user_password, _, host_port = authority.rpartition("@")
    hostname, port = _host_and_port(host_port)
    uri = f"{raw_path}?{query}" if query else raw_path
    parts: dict[str, Any] = {
        "": f"{scheme}://{authority}{uri}",
        "authority": authority,
        "host": hostname,
        "path": unquote(raw_path, errors="replace") if "%" in raw_path else raw_path,
        "query": query,
        "raw": raw,
        "raw_path": raw_path,
        "scheme": scheme,
        "uri": uri,
    }
    if port is not None:
        parts["port"] = port
    if user_password:
        parts["user_password"] = user_password
    return parts


def query_params(query: str) -> dict[str, list[str]]:
    """`a=1&a=2&b` -> {"a": ["1", "2"], "b": [""]} (Go's url.ParseQuery)."""
    return parse_qs(query, keep_blank_values=True) if query else {}


def _host_and_port(host_port: str) -> tuple[str, int | None]:
    # `example.test:8080`, `[::1]:8080`, `example.test`: the host lower-cased, the port if valid.
    if host_port.startswith("["):
        close = host_port.find("]")
        if close < 0:
            return host_port.lower(), None
        host, rest = host_port[1:close], host_port[close + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = host_port.partition(":")
    number = int(port) if port.isdigit() and len(port) <= 5 else None
    return host.lower(), number if number is not None and number <= 65535 else None
