"""CEL variables for one exchange, built from its facts only when an expression reads them.

Names and shapes (ngrok's docs, `snippets/traffic-policy/variables/*.mdx`; the list of names is
cel_schema.py's): `req.*`, `res.*`, `conn.*`, `endpoint.*`, `time.now`, `vars.*` and
`actions.ngrok.<action>.*`. Rules:
- A value is read by its path, e.g. ("req", "url", "path") or ("req", "headers", "x-id", 0), so
  an expression that reads `req.method` never builds the header map. cel.py turns each variable
  path of an expression into one such read.
- `req.url`, `req.content_type`, `req.user_agent` and `res.content_type` are strings; their fields
  (`req.url.path`, `req.content_type.parameters`...) are read by longer paths.
- `req.headers` / `res.headers`: lower-cased names to lists of values; a name in a path matches
  any spelling (`req.headers['User-Agent']`, as ngrok's own examples write it). Field values
  are read as UTF-8 text (facts.as_text).
- Values ngrok says "may not be present" (`req.content_length`, `res.content_length`,
  `req.url.port`) read as 0 when absent, and `has()` of them is false. Header-backed strings
  (`req.content_type`, `req.location`, `req.user_agent`, `res.location`...) read as "" when the
  field is absent. `req.trailers`/`res.trailers` are empty maps (trailers are not kept).
- Timestamps are timezone-aware UTC datetimes; `time.now` is an RFC 3339 string, as ngrok has it.
- req, res, conn and endpoint values are kept per Scope until `changed(root)` (or a new request /
  response is set); vars and actions are read live from their dicts.
- A path that does not exist raises Missing ("no such key: req.headers['x-id']"); so does
  `req.*` before a request (on_tcp_connect) and `res.*` before a response.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from . import cel_http_values
from .cel_codecs import rfc3339
from .cel_errors import CelFunctionError
from .cel_schema import show_path
from .facts import ConnFacts, EndpointFacts, RequestFacts, ResponseFacts, as_text

Path = tuple[str | int, ...]


class Missing(CelFunctionError):
    """A variable path that has no value in this exchange, e.g. a header it does not carry."""


_UNSET: Any = object()
_CACHED_ROOTS = ("req", "res", "conn", "endpoint")
# Absent "may not be present" values read as 0 (and has() is false).
_ZERO_WHEN_ABSENT = frozenset({("req", "content_length"), ("res", "content_length"), ("req", "url", "port")})


class Scope:
    """The variables one exchange's expressions see: req, res, conn, endpoint, time, vars, actions.

    One Scope per exchange (per connection for on_tcp_connect). `vars` are per phase (ngrok's
    set-vars page scopes them to the phase that set them): the proxy empties them before each
    phase. `request`/`response` may be replaced or changed in place by
    actions; call `changed("req")`/`changed("res")` after an in-place change so later rules see
    it (assigning a new request or response does that itself). `clock` gives epoch seconds for
    `time.now`.
    """

    __slots__ = ("_cache", "_request", "_response", "actions", "clock", "conn", "endpoint", "vars")

    def __init__(self, *, conn: ConnFacts, endpoint: EndpointFacts, clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.endpoint = endpoint
        self.clock = clock
        self._request: RequestFacts | None = None
        self._response: ResponseFacts | None = None
        self.vars: dict[str, Any] = {}
        # actions.ngrok.<name>.*: what an action reports for later rules, keyed by ngrok's action
        # name with underscores (scope.actions["basic_auth"] is actions.ngrok.basic_auth).
        self.actions: dict[str, dict[str, Any]] = {}
        self._cache: dict[str, dict[Any, Any]] = {root: {} for root in _CACHED_ROOTS}

    @property
    def request(self) -> RequestFacts | None:
        return self._request

    @request.setter
    def request(self, request: RequestFacts | None) -> None:
        self._request = request
        self._cache["req"] = {}

    @property
    def response(self) -> ResponseFacts | None:
        return self._response

    @response.setter
    def response(self, response: ResponseFacts | None) -> None:
        self._response = response
        self._cache["res"] = {}

    def changed(self, root: str) -> None:
        """Forget the cached CEL values of a root variable ("req", "res", "conn", "endpoint").
        "vars" and "actions" are accepted and need nothing: they are always read live."""
        if root in self._cache:
            self._cache[root] = {}

    def value(self, path: Path) -> Any:
        """The value at `path`; raises Missing when the exchange has none there."""
        cache = self._cache.get(str(path[0]))
        if cache is None:
            return self._compute(path)
        found = cache.get(path, _UNSET)
        if found is _UNSET:
            found = cache[path] = self._compute(path)
        return found

    def has(self, path: Path) -> bool:
        """CEL's `has()`: whether `path` exists (a value ngrok may leave out is absent here)."""
        try:
            if path in _ZERO_WHEN_ABSENT:
                return self._present(path)
            self.value(path)
        except Missing:
            return False
        return True

    def facts_of(self, root: str) -> RequestFacts | ResponseFacts:
        """The request ("req") or response ("res") facts; Missing when there is none yet."""
        facts = self._request if root == "req" else self._response
        if facts is None:
            raise Missing(_no_root(root))
        return facts

    # --- computing one path ---------------------------------------------------------------

    def _compute(self, path: Path) -> Any:
        root = path[0]
        if root == "vars":
            return _walk(self.vars, path, 1)
        if root == "actions":
            return _walk({"ngrok": self.actions}, path, 1)
        if root == "time":
            return _walk({"now": rfc3339(_utc(int(self.clock())))}, path, 1)
        if root == "req" or root == "res":
            return self._message_value(str(root), path)
        if root == "conn":
            return self._conn_value(path)
        if root == "endpoint":
            return _walk(self._endpoint_map(), path, 1)
        raise Missing(f"unknown variable {show_path(path)}")

    def _message_value(self, root: str, path: Path) -> Any:
        facts = self._request if root == "req" else self._response
        if facts is None:
            raise Missing(_no_root(root))
        if len(path) == 1:
            return {name: self.value((root, name)) for name in _PUBLIC_FIELDS[root] if self._present((root, name))}
        field = path[1]
        if len(path) > 2:
            if field == "headers" and isinstance(path[2], str):
                values = [as_text(value) for value in facts.header_values(path[2])]
                if not values:
                    raise Missing(f"no such key: {show_path(path[:3])}")
                return _walk(values, path, 3)
            if field in _SPLIT_FIELDS:
                if path[2] == "query_params" and field == "url":
                    return _walk(self.value(("req", "#query_params")), path, 3)
                if path in _ZERO_WHEN_ABSENT and not self._present(path):
                    return 0
                return _walk(self._parts(root, str(field)), path, 2)
        elif field == "content_length" and not self._present(path):
            return 0
        getter = _MESSAGE_FIELDS[root].get(str(field))
        if getter is None:
            raise Missing(f"no such key: {show_path(path[:2])}")
        value = getter(self, facts)
        return value if len(path) == 2 else _walk(value, path, 2)

    def _present(self, path: Path) -> bool:
        # Only the values ngrok "may not" give can be absent from a request or response.
        if path[1:] == ("content_length",):
            return isinstance(self.value((path[0], "#content_length")), int)
        if path == ("req", "url", "port"):
            return "port" in self._parts("req", "url")
        return True

    def _parts(self, root: str, field: str) -> dict[str, Any]:
        return self.value((root, f"#{field}"))

    def _conn_value(self, path: Path) -> Any:
        conn = self.conn
        if len(path) > 1 and path[1] == "tls":
            if conn.tls is None:
                raise Missing("conn.tls: the connection does not use TLS")
            tls = {
                "version": conn.tls.get("version", ""),
                "cipher_suite": conn.tls.get("cipher", ""),
                "sni": conn.tls.get("sni", ""),
                "negotiated_alpn": conn.tls.get("alpn", ""),
                "session_resumed": False,
            }
            return _walk(tls, path, 2)
        values: dict[str, Any] = {
            "client_ip": conn.client_ip,
            "client_port": conn.client_port,
            "server_ip": conn.server_ip,
            "server_port": conn.server_port,
            "ts": {"start": _utc(conn.start)},
        }
        if len(path) == 1 and conn.tls is not None:
            values["tls"] = self.value(("conn", "tls"))
        return _walk(values, path, 1)

    def _endpoint_map(self) -> dict[str, Any]:
        endpoint = self.endpoint
        return {
            "id": endpoint.id,
            "url": endpoint.url,
            "host": endpoint.host,
            "port": endpoint.port,
            "protocol": endpoint.protocol,
            "addr": f"{endpoint.host}:{endpoint.port}",
        }


def _walk(value: Any, path: Path, start: int) -> Any:
    for index in range(start, len(path)):
        segment = path[index]
        if isinstance(value, dict):
            if segment not in value:
                raise Missing(f"no such key: {show_path(path[: index + 1])}")
            value = value[segment]
        elif isinstance(value, list) and isinstance(segment, int) and not isinstance(segment, bool):
            if not 0 <= segment < len(value):
                raise Missing(f"index out of range: {show_path(path[: index + 1])} (the list has {len(value)})")
            value = value[segment]
        else:
            raise Missing(f"{show_path(path[:index])} has no field {segment!r}")
    return value


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _no_root(root: str) -> str:
    if root == "req":
        return "req: there is no HTTP request in on_tcp_connect"
    return "res: there is no response before on_http_response"


def _headers(facts: RequestFacts | ResponseFacts) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in facts.headers:
        headers.setdefault(name.lower(), []).append(as_text(value))
    return headers


def _content_length(facts: RequestFacts | ResponseFacts) -> int | None:
    value = facts.header("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _content_type(facts: RequestFacts | ResponseFacts) -> dict[str, Any]:
    raw = facts.header("content-type") or ""
    main, parameters = cel_http_values.media_type(raw) if raw else ("", {})
    return {"": main, "raw": raw, "parameters": parameters}


def _request(facts: RequestFacts | ResponseFacts) -> RequestFacts:
    assert isinstance(facts, RequestFacts)
    return facts


def _response(facts: RequestFacts | ResponseFacts) -> ResponseFacts:
    assert isinstance(facts, ResponseFacts)
    return facts


_Getter = Callable[[Scope, Any], Any]

# Fields that are a string and also have fields of their own: the string is under the key "".
_SPLIT_FIELDS = frozenset({"url", "content_type"})


def _split_string(field: str) -> _Getter:
    return lambda scope, facts: scope._parts(_root_of(facts), field)[""]


def _root_of(facts: RequestFacts | ResponseFacts) -> str:
    return "req" if isinstance(facts, RequestFacts) else "res"


_COMMON_FIELDS: dict[str, _Getter] = {
    "headers": lambda scope, facts: _headers(facts),
    "content_type": _split_string("content_type"),
    "#content_type": lambda scope, facts: _content_type(facts),
    "content_length": lambda scope, facts: scope.value((_root_of(facts), "#content_length")),
    "#content_length": lambda scope, facts: _content_length(facts),
    "content_encoding": lambda scope, facts: cel_http_values.content_codings(facts.header_values("content-encoding")),
    "trailers": lambda scope, facts: {},
}

_MESSAGE_FIELDS: dict[str, dict[str, _Getter]] = {
    "req": {
        **_COMMON_FIELDS,
        "method": lambda scope, facts: _request(facts).method,
        "url": _split_string("url"),
        "#url": lambda scope, facts: cel_http_values.url_parts(
            _request(facts).scheme, _request(facts).host, _request(facts).target
        ),
        "#query_params": lambda scope, facts: cel_http_values.query_params(scope._parts("req", "url")["query"]),
        "host": lambda scope, facts: _request(facts).host,
        "cookies": lambda scope, facts: cel_http_values.request_cookies(
            [as_text(value) for value in facts.header_values("cookie")]
        ),
        "ts": lambda scope, facts: {"header_received": _utc(_request(facts).start)},
        "version": lambda scope, facts: f"HTTP/{_request(facts).version}",
        "location": lambda scope, facts: as_text(facts.header("location") or ""),
        "user_agent": lambda scope, facts: as_text(facts.header("user-agent") or ""),
    },
    "res": {
        **_COMMON_FIELDS,
        "status_code": lambda scope, facts: _response(facts).status,
        "cookies": lambda scope, facts: cel_http_values.response_cookies(
            [as_text(value) for value in facts.header_values("set-cookie")]
        ),
        "location": lambda scope, facts: as_text(facts.header("location") or ""),
    },
}
# The fields of the whole `req`/`res` map: the "#" entries are the parsed forms behind them.
_PUBLIC_FIELDS = {
    root: tuple(name for name in fields if not name.startswith("#")) for root, fields in _MESSAGE_FIELDS.items()
}
