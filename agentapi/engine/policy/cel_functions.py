"""Every function a Traffic Policy expression may call: the `cel` package's own, and ngrok's macros
registered as Python functions (one table, built once per process).

Rules (ngrok's docs, `traffic-policy/macros/index.mdx`):
- A function is called by name (`inCidrRange(ip, cidr)`), by its namespace (`hash.sha256(x)`),
  or as a method of its first argument (`conn.client_ip.isPrivateIp()`): CEL reads `x.f(y)` as
  `f(x, y)`, so one registration serves both the function and the method form.
- getReqHeader/hasReqHeader/getQueryParam/hasQueryParam/getReqCookie/hasReqCookie read the request
  of the exchange being evaluated, getResHeader/hasResHeader/getResCookie/hasResCookie its
  response; header names match case-insensitively (ngrok asks for the canonical spelling; any
  spelling works here). A missing header or parameter gives an empty list; getReqCookie and
  getResCookie of a missing cookie is an error.
- inCidrRange(ip, cidr) is false for an invalid address or range (a range with host bits set, as
  in the docs' `66.249.66.1/24`, is taken as its network); inCidrRanges skips invalid ranges.
  An IPv4 address written as IPv6 (`::ffff:1.2.3.4`) is read as IPv4.
- isPrivateIp is RFC 1918 for IPv4 and RFC 4193 (fc00::/7) for IPv6, as Go's `netip.Addr.IsPrivate`.
- rand.int(min=0, max=1) includes both ends; min must not be above max and neither negative.
- `secrets.get` needs ngrok's vault and is refused when the policy loads (cel.py).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import cel as cel_lib
from cel import stdlib

from . import cel_codecs, cel_strings, cel_time
from .cel_errors import CelFunctionError
from .facts import as_text

if TYPE_CHECKING:
    from .variables import Scope

# The `cel` package's native functions and macros (cel-rust), callable by name or as methods.
NATIVE_FUNCTIONS = frozenset(
    {"size", "has", "int", "uint", "double", "string", "bytes", "timestamp", "duration", "dyn", "type"}
)
NATIVE_METHODS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        *cel_time.TIMESTAMP_METHODS,
    }
)
# Macros whose first argument names a variable bound for the rest (`list.exists(v, v > 1)`).
BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter", "sortBy"})
# Type names usable as values (`type(x) == string`).
TYPE_NAMES = frozenset({"bool", "int", "uint", "double", "string", "bytes", "list", "map", "null_type", "type"})
# Functions that read a root variable of the exchange without naming it.
READS_ROOT = {
    **dict.fromkeys(
        ("getReqHeader", "hasReqHeader", "getQueryParam", "hasQueryParam", "getReqCookie", "hasReqCookie"), "req"
    ),
    **dict.fromkeys(("getResHeader", "hasResHeader", "getResCookie", "hasResCookie"), "res"),
}
CLOUD_FUNCTIONS = {"secrets.get": "it reads ngrok's cloud vault"}

_STDLIB_USED = (
    "charAt",
    "indexOf",
    "lastIndexOf",
    "substring",
    "replace",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "reverse",
    "strings.quote",
    "distinct",
    "flatten",
    "slice",
    "sort",
    "lists.range",
    "bool",
)

_random = random.Random()

# lists.range(n) builds n values on the event loop: a rule fed by request input
# (`lists.range(int(getQueryParam('n')[0]))`) must not let a client stall or exhaust the agent.
MAX_RANGE = 10_000


def _bounded_range(inner: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any) -> Any:
        if args and isinstance(args[0], int) and not isinstance(args[0], bool) and args[0] > MAX_RANGE:
            raise CelFunctionError(f"lists.range: at most {MAX_RANGE} values")
        return inner(*args)

    return bounded


def build_functions(current_scope: Callable[[], Scope]) -> dict[str, Callable[..., Any]]:
    """Every Python-backed function by the name CEL calls it. `current_scope` gives the Scope of
    the evaluation running on this thread (the request macros read it)."""
    functions: dict[str, Callable[..., Any]] = {name: stdlib.STDLIB_FUNCTIONS[name] for name in _STDLIB_USED}
    functions["lists.range"] = _bounded_range(stdlib.STDLIB_FUNCTIONS["lists.range"])
    for name in cel_codecs.HASH_NAMES:
        hash_function = cel_codecs.make_hash(name)
        functions[f"hash.{name}"] = hash_function
        functions[name] = hash_function  # 'x'.sha256()
    for name in cel_time.TIMESTAMP_METHODS:
        functions[name] = cel_time.make_timestamp_method(name)
    functions.update(
        {
            "base64.encode": cel_codecs.base64_encode,
            "base64.decode": cel_codecs.base64_decode,
            "encodeBase64": cel_codecs.base64_encode,
            "decodeBase64": cel_codecs.decode_base64_text,
            "basic_auth.encode": cel_codecs.basic_auth_encode,
            "json.encode": cel_codecs.json_encode,
            "json.decode": cel_codecs.json_decode,
            "encodeJson": cel_codecs.json_encode,
            "decodeJson": cel_codecs.json_decode,
            "isJson": cel_codecs.is_json,
            "url.escape": cel_codecs.url_escape,
            "url.unescape": cel_codecs.url_unescape,
            "url.parse": cel_codecs.url_parse,
            "escapeUrl": cel_codecs.url_escape,
            "unescapeUrl": cel_codecs.url_unescape,
            "parseUrl": cel_codecs.url_parse,
            "isURL": cel_codecs.is_url,
            "queryString.decode": cel_codecs.query_decode,
            "queryString.encode": cel_codecs.query_encode,
            "decodeQueryString": cel_codecs.query_decode,
            "encodeQueryString": cel_codecs.query_encode,
            "isQueryString": cel_codecs.is_query_string,
            "split": cel_strings.split,
            "lower": cel_strings.lower,
            "upper": cel_strings.upper,
            "format": cel_strings.format_string,
            "sortPairs_": cel_strings.sort_pairs,
            "matches": _matches,
            "rand.int": rand_int,
            "rand.double": rand_double,
            "inCidrRange": in_cidr_range,
            "inCidrRanges": in_cidr_ranges,
            "isPrivateIp": is_private_ip,
        }
    )
    functions.update(_exchange_macros(current_scope))
    return functions


def _exchange_macros(current_scope: Callable[[], Scope]) -> dict[str, Callable[..., Any]]:
    def headers(root: str, name: Any) -> list[str]:
        facts = current_scope().facts_of(root)
        return [as_text(value) for value in facts.header_values(_name(name, "header name"))]

    def query(name: Any) -> list[str]:
        params = current_scope().value(("req", "url", "query_params"))
        return list(params.get(_name(name, "query parameter"), []))

    def cookies(root: str, name: Any) -> list[dict[str, Any]]:
        jar = current_scope().value((root, "cookies"))
        return list(jar.get(_name(name, "cookie name"), []))

    def get_cookie(root: str, name: Any) -> dict[str, Any]:
        found = cookies(root, name)
        if not found:
            raise CelFunctionError(f"the {'request' if root == 'req' else 'response'} has no cookie named {name!r}")
        return found[0]

    return {
        "getReqHeader": lambda name: headers("req", name),
        "hasReqHeader": lambda name: bool(headers("req", name)),
        "getResHeader": lambda name: headers("res", name),
        "hasResHeader": lambda name: bool(headers("res", name)),
        "getQueryParam": query,
        "hasQueryParam": lambda name: bool(query(name)),
        "getReqCookie": lambda name: get_cookie("req", name),
        "hasReqCookie": lambda name: bool(cookies("req", name)),
        "getResCookie": lambda name: get_cookie("res", name),
        "hasResCookie": lambda name: bool(cookies("res", name)),
    }


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CelFunctionError(f"the {what} must be a string")
    return value


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=1024)
def _address(text: str) -> _Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=1024)
def _network(text: str) -> _Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def in_cidr_range(ip: Any, cidr: Any) -> bool:
    """inCidrRange('192.168.1.100', '192.168.1.0/24') -> True."""
    if not isinstance(ip, str) or not isinstance(cidr, str):
        raise CelFunctionError("inCidrRange: expects an IP address and a CIDR range, as strings")
    address, network = _address(ip), _network(cidr)
    return address is not None and network is not None and address.version == network.version and address in network


def in_cidr_ranges(ip: Any, cidrs: Any) -> bool:
    """inCidrRanges('192.168.1.100', ['192.168.1.0/24', '10.0.0.0/8']) -> True."""
    if not isinstance(cidrs, list):
        raise CelFunctionError("inCidrRanges: expects a list of CIDR ranges")
    return any(in_cidr_range(ip, cidr) for cidr in cidrs)


_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


def is_private_ip(ip: Any) -> bool:
    """'192.168.1.1'.isPrivateIp() -> True."""
    if not isinstance(ip, str):
        raise CelFunctionError("isPrivateIp: expects a string")
    address = _address(ip)
    return address is not None and any(address.version == n.version and address in n for n in _PRIVATE)


def rand_int(low: Any = 0, high: Any = 1) -> int:
    """rand.int(min, max) -> a random int in [min, max]."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        raise CelFunctionError("rand.int: expects two ints")
    if low < 0 or high < low:
        raise CelFunctionError(f"rand.int: needs 0 <= min <= max, not {low} and {high}")
    return _random.randint(low, high)


def rand_double() -> float:
    """rand.double() -> a random double in [0, 1)."""
    return _random.random()


# The function form matches(s, re) is not native; the method form is (Rust's regex crate, the
# RE2 dialect). The function hands its pair to the method so both read a pattern the same way.
_NATIVE_MATCHES = cel_lib.compile("text.matches(pattern)")


def _matches(text: Any, pattern: Any) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise CelFunctionError("matches: expects a string and a pattern")
    try:
        return bool(_NATIVE_MATCHES.execute({"text": text, "pattern": pattern}))
    except (RuntimeError, ValueError) as error:
        raise CelFunctionError(str(error).split(". Check function", 1)[0]) from None
