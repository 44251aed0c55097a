"""The deprecated tunnel keys and command-line flags, turned into the equivalent Traffic Policy.

Since agent 3.36 ngrok deprecates the flags that Traffic Policy made obsolete; they still work and
print a warning ("use traffic policy instead", `agent/cli.mdx`; `agent/changelog.mdx` 3.36.0). The
equivalent actions come from ngrok's own migration table (`guides/migration/
modules-to-traffic-policy-actions.mdx`). Here each key becomes one rule named after it
("basic_auth (deprecated key)"), so the trace and every load error say where a rule came from:

| key (flag)                                   | rule                                                     |
|----------------------------------------------|----------------------------------------------------------|
| `basic_auth`, `auth` (--basic-auth)          | on_http_request basic-auth `credentials`                 |
| `ip_restriction` (--cidr-allow/--cidr-deny)  | restrict-ips `allow`/`deny`: on_http_request for http,   |
|                                              | on_tcp_connect for tcp and tls (not deprecated there)    |
| `user_agent_filter` (--ua-filter-allow/deny) | on_http_request deny, with a CEL expression (below)      |
| `verify_webhook`, `webhook_verification`     | on_http_request verify-webhook `provider`, `secret`      |
| `circuit_breaker` (--circuit-breaker)        | on_http_request circuit-breaker `error_threshold`        |
| `request_header` (--request-header-add/-rm)  | on_http_request remove-headers, then add-headers         |
| `response_header` (--response-header-...)    | on_http_response remove-headers, then add-headers        |
| `compression` (--compression)                | on_http_response compress-response (its defaults)        |

Rules (where ngrok's docs leave a choice, ours, marked):
- Order within a phase is the table's: who may connect, then who may ask, then what is changed.
  Legacy rules come before the rules of a `traffic_policy` given beside them (tunnel_spec.py).
- Header values keep `${...}`: ngrok's request_header module interpolated them too
  (`--request-header-add='country: ${conn.geo.country_code}'` in its docs). Removal runs before
  addition (ours: so a value can be replaced, as the proxy did before), and add-headers takes at
  most 10 distinct names per action, so a longer or repeated list becomes several actions.
- `ip_restriction` with only `deny_cidrs` allows every other address (`0.0.0.0/0`, `::/0`), as the
  module did; restrict-ips allows only what matches `allow`. CIDRs are written in their canonical
  form (`10.1.2.3/8` -> `10.0.0.0/8`; a bare address is a /32 or /128).
- `circuit_breaker` is the error ratio (0.5). pyngrok's documented `circuit_breaker=50` is read as
  a percentage (ours): a value above 1 and at most 100 is divided by 100. 0 turns it off.
- `user_agent_filter` (ngrok's User Agent Filter module): the first User-Agent value is matched
  against RE2 patterns (checked with RE2 at load; unanchored, CEL's `matches`). A request is let through when it matches an
  allow pattern, or when there are deny patterns and it matches none; a request without the header
  is tested as "" against the allow patterns only ("add `^$` to allow them").
- `oauth`, `oidc`, `mutual_tls_cas` and `labels` need ngrok's cloud; `websocket_tcp_converter` is
  not supported (`proxy_proto` is tunnel_spec.py's `proxy_protocol`). REFUSED_KEYS holds the reason each is refused with (by
  tunnel_spec.py, whatever the protocol). Nothing is silently ignored.
Every refusal here is a LegacyKeyError naming the key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .actions import CLOUD_ONLY
from .actions.url_rewrite import compile_regex

REQUEST, RESPONSE, TCP = "on_http_request", "on_http_response", "on_tcp_connect"
MAX_HEADERS_PER_ACTION = 10  # add-headers and remove-headers take 1-10 entries

# Keys read here; tunnel_spec.py accepts them (with their JSON types) and passes the definition in.
HTTP_KEYS = frozenset(
    {
        "basic_auth",
        "auth",
        "ip_restriction",
        "user_agent_filter",
        "verify_webhook",
        "webhook_verification",
        "circuit_breaker",
        "request_header",
        "response_header",
        "compression",
    }
)
TCP_KEYS = frozenset({"ip_restriction"})

# Keys ngrok knows that cannot run here: refused with the reason, whatever the protocol.
REFUSED_KEYS = {
    "oauth": f"oauth needs ngrok's cloud: {CLOUD_ONLY['oauth']}",
    "oidc": f"oidc needs ngrok's cloud: {CLOUD_ONLY['oidc']}",
    "mutual_tls_cas": "mutual_tls_cas needs ngrok's cloud: client certificates are checked at ngrok's edge",
    "labels": "labels need ngrok's cloud: they attach a tunnel to an ngrok Edge",
    "websocket_tcp_converter": "websocket_tcp_converter is not supported by this agent",
}

# The flags each key stands for, for the deprecation notice (`agent/cli.mdx`).
_FLAGS = {
    "basic_auth": "--basic-auth",
    "auth": "--basic-auth",
    "ip_restriction": "--cidr-allow/--cidr-deny",
    "user_agent_filter": "--ua-filter-allow/--ua-filter-deny",
    "verify_webhook": "--verify-webhook/--verify-webhook-secret",
    "webhook_verification": "--verify-webhook/--verify-webhook-secret",
    "circuit_breaker": "--circuit-breaker",
    "request_header": "--request-header-add/--request-header-remove",
    "response_header": "--response-header-add/--response-header-remove",
    "compression": "--compression",
}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.1 field name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR/LF would inject fields upstream


class LegacyKeyError(ValueError):
    """A deprecated key with a value that cannot become a policy; the message names the key."""


@dataclass(frozen=True, slots=True)
class LegacyPolicy:
    """The policy the deprecated keys of one definition stand for.

    `document`: phase -> rules, in the shape `load_policy` reads (empty when no key asks for
    anything). `notices`: one deprecation warning per key used, for the log.
    """

    document: dict[str, list[dict[str, Any]]]
    notices: tuple[str, ...]


def legacy_policy(definition: Mapping[str, Any], *, proto: str) -> LegacyPolicy:
    """The rules for the deprecated keys of a tunnel definition of `proto` (http, tcp or tls).

    The definition's keys are already known to the tunnel checks and of the right JSON type;
    this checks their contents. Raises LegacyKeyError.
    """
    http = proto in ("http", "https")
    rules: dict[str, list[dict[str, Any]]] = {}
    notices: list[str] = []

    def add(key: str, phase: str, actions: list[dict[str, Any]], *, expression: str = "", note: str = "") -> None:
        rule: dict[str, Any] = {"name": f"{key} (deprecated key)"}
        if expression:
            rule["expressions"] = [expression]
        rule["actions"] = actions
        rules.setdefault(phase, []).append(rule)
        if http or key != "ip_restriction":  # --cidr-allow/--cidr-deny are current on tcp and tls
            notices.append(
                f"{key} ({_FLAGS[key]}) has been deprecated, use traffic policy instead;"
                f' it runs as the {phase} rule "{rule["name"]}"{note}'
            )

    if definition.get("ip_restriction") is not None:
        action = _restrict_ips(definition["ip_restriction"])
        if action:
            add("ip_restriction", REQUEST if http else TCP, [action])
    if not http:
        return LegacyPolicy(rules, tuple(notices))
    if definition.get("user_agent_filter") is not None:
        expression = _user_agent_expression(definition["user_agent_filter"])
        if expression:
            add("user_agent_filter", REQUEST, [{"type": "deny"}], expression=expression)
    key = _one_of(definition, "basic_auth", "auth")
    credentials = _credentials(key, definition.get(key))
    if credentials:
        add(key, REQUEST, [{"type": "basic-auth", "config": {"credentials": credentials}}])
    key = _one_of(definition, "verify_webhook", "webhook_verification")
    if definition.get(key) is not None:
        add(key, REQUEST, [{"type": "verify-webhook", "config": _webhook(key, definition[key])}])
    if definition.get("circuit_breaker") is not None:
        threshold, note = _error_threshold(definition["circuit_breaker"])
        if threshold:
            config = {"error_threshold": threshold}
            add("circuit_breaker", REQUEST, [{"type": "circuit-breaker", "config": config}], note=note)
    for key, phase in (("request_header", REQUEST), ("response_header", RESPONSE)):
        if definition.get(key) is not None:
            actions = _header_actions(key, definition[key])
            if actions:
                add(key, phase, actions)
    if definition.get("compression") is True:
        add("compression", RESPONSE, [{"type": "compress-response"}])
    return LegacyPolicy(rules, tuple(notices))


def _one_of(definition: Mapping[str, Any], key: str, alias: str) -> str:
    """The one of two spellings of a key that is given (`key` when neither is)."""
    if definition.get(key) is not None and definition.get(alias) is not None:
        raise LegacyKeyError(f"{key} and {alias} are two spellings of one key: give one")
    return alias if definition.get(alias) is not None else key


def _credentials(key: str, raw: Any) -> list[str]:
    """`basic_auth`: one "user:password" string or a list of them (the action checks lengths)."""
    if raw in (None, "", []):
        return []
    entries = [raw] if isinstance(raw, str) else raw
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise LegacyKeyError(f'{key} must be a list of "user:password" strings')
    for entry in entries:
        user, sep, _ = entry.partition(":")
        if not sep or not user:
            raise LegacyKeyError(f'invalid {key} entry {_shown(entry)!r}: expected "user:password"')
    return list(entries)


def _restrict_ips(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or set(raw) - {"allow_cidrs", "deny_cidrs"}:
        raise LegacyKeyError("ip_restriction takes allow_cidrs and deny_cidrs lists")
    lists: dict[str, list[str]] = {}
    for key in ("allow_cidrs", "deny_cidrs"):
        cidrs = raw.get(key) or []
        if not isinstance(cidrs, list) or not all(isinstance(c, str) for c in cidrs):
            raise LegacyKeyError(f"ip_restriction.{key} must be a list of CIDR strings")
        try:
            lists[key] = [str(ipaddress.ip_network(c.strip(), strict=False)) for c in cidrs]
        except ValueError as error:
            raise LegacyKeyError(f"invalid CIDR in ip_restriction.{key}: {error}") from None
    allow, deny = lists["allow_cidrs"], lists["deny_cidrs"]
    if not allow and not deny:
        return None
    config: dict[str, Any] = {"enforce": True, "allow": allow or ["0.0.0.0/0", "::/0"]}
    if deny:
        config["deny"] = deny
    return {"type": "restrict-ips", "config": config}


def _header_actions(key: str, raw: Any) -> list[dict[str, Any]]:
    """remove-headers then add-headers, each with at most 10 entries and no name twice."""
    if not isinstance(raw, dict) or set(raw) - {"add", "remove"}:
        raise LegacyKeyError(f"{key} takes add and remove lists")
    entries, names = raw.get("add") or [], raw.get("remove") or []
    if not isinstance(entries, list) or not isinstance(names, list):
        raise LegacyKeyError(f"{key}.add and {key}.remove must be lists of strings")
    removed: list[str] = []
    for name in names:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name.strip()):
            raise LegacyKeyError(f"invalid {key}.remove entry {_shown(name)!r}: a header name")
        removed.append(name.strip())
    added: list[tuple[str, str]] = []
    for entry in entries:
        name, sep, value = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not sep or not _TOKEN.fullmatch(name.strip()):
            raise LegacyKeyError(f'invalid {key}.add entry {_shown(entry)!r}: expected "Name: value"')
        if _CONTROL.search(value):
            raise LegacyKeyError(f"invalid {key}.add entry {_shown(entry)!r}: control characters in the value")
        added.append((name.strip(), value.strip()))
    actions: list[dict[str, Any]] = [
        {"type": "remove-headers", "config": {"headers": removed[i : i + MAX_HEADERS_PER_ACTION]}}
        for i in range(0, len(removed), MAX_HEADERS_PER_ACTION)
    ]
    batch: dict[str, str] = {}
    for name, value in added:
        if len(batch) == MAX_HEADERS_PER_ACTION or name.lower() in {n.lower() for n in batch}:
            actions.append({"type": "add-headers", "config": {"headers": batch}})
            batch = {}
        batch[name] = value
    if batch:
        actions.append({"type": "add-headers", "config": {"headers": batch}})
    return actions


def _webhook(key: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) - {"provider", "secret"}:
        raise LegacyKeyError(f"{key} takes provider and secret")
    provider, secret = raw.get("provider"), raw.get("secret")
    if not isinstance(provider, str) or not provider.strip():
        raise LegacyKeyError(f"{key}.provider is required: the provider's identifier, e.g. github")
    config: dict[str, Any] = {"provider": provider.strip().lower()}
    if secret is not None:
        if not isinstance(secret, str):
            raise LegacyKeyError(f"{key}.secret must be a string")
        config["secret"] = secret
    return config


def _error_threshold(raw: Any) -> tuple[float, str]:
    """The ratio of 5xx answers that trips the breaker, and a note when it was read as a percentage."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 100:
        raise LegacyKeyError(
            f"invalid circuit_breaker {_shown(raw)}: the ratio of 5xx responses that trips it, "
            "between 0 and 1 (or a percentage up to 100)"
        )
    if raw <= 1:
        return float(raw), ""
    ratio = raw / 100
    return ratio, f" (circuit_breaker {raw:g} read as {raw:g}%: error_threshold {ratio:g})"


def _user_agent_expression(raw: Any) -> str:
    """The CEL expression that is true for a request the filter refuses ("" when it has no patterns)."""
    if not isinstance(raw, dict) or set(raw) - {"allow", "deny"}:
        raise LegacyKeyError("user_agent_filter takes allow and deny lists")
    patterns: dict[str, list[str]] = {}
    for key in ("allow", "deny"):
        values = raw.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise LegacyKeyError(f"user_agent_filter.{key} must be a list of regular expressions")
        for value in values:
            _check_re2(value, f"user_agent_filter.{key}")
        patterns[key] = values
    allow, deny = patterns["allow"], patterns["deny"]
    if not allow and not deny:
        return ""
    agent = '("user-agent" in req.headers ? req.headers["user-agent"][0] : "")'
    allowed = " || ".join(f"{agent}.matches({cel_string(p)})" for p in allow)
    refused = " || ".join(['!("user-agent" in req.headers)', *(f"{agent}.matches({cel_string(p)})" for p in deny)])
    if not deny:
        return f"!({allowed})"
    if not allow:
        return refused
    return f"!({allowed}) && ({refused})"


def _check_re2(pattern: str, where: str) -> None:
    """Refuse what RE2, ngrok's dialect, refuses (ngrok's ERR_NGROK_2090 wording)."""
    try:
        compile_regex(pattern)
    except ValueError as error:
        raise LegacyKeyError(
            f"{where}: the user agent filter regular expression {_shown(pattern)!r} is an invalid regular expression: {error}"
        ) from None


def cel_string(text: str) -> str:
    """`text` as a double-quoted CEL string literal that means exactly `text`.

    Backslashes and quotes are escaped, control characters written as `\\u00XX` (CEL's
    escapes, cel-spec `langdef.md` "String and Bytes Values"); everything else is kept.
    """
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _shown(value: Any, limit: int = 64) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
