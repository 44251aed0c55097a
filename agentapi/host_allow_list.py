"""The DNS-rebinding defence of the real agent (3.1.1+): answer only to known Host names.

Allowed: localhost, 127.0.0.1, [::1] (any port), and each `web_allow_hosts` entry: an exact IP, a
CIDR, a hostname, or `.suffix` for a domain and its subdomains. Others get 403 with the error shape.
The entries are AGENT_WEB_ALLOW_HOSTS (settings, from the environment) and those of the running
agent's config file (given to its runtime at start-up, never written into settings).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from . import go_json
from .errors import error_body
from .runtime import current_runtime

_ALWAYS = ("localhost", "127.0.0.1", "::1")


def web_allow_hosts() -> list[str]:
    """Every `web_allow_hosts` entry in force: the settings' and the running agent's config file's."""
    runtime = current_runtime()
    extra = runtime.web_allow_hosts if runtime is not None else ()
    return [*settings.AGENT_WEB_ALLOW_HOSTS, *extra]


def split_host(host: str) -> str:
    """The host part of a Host header value, without port or IPv6 brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def host_allowed(host: str, allow: Iterable[str]) -> bool:
    name = split_host(host)
    if not name:
        return False
    if name in _ALWAYS:
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif entry.startswith("."):
            if name == entry[1:] or name.endswith(entry):
                return True
        elif split_host(entry) == name:
            return True
    return False


class HostAllowListMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        host = request.META.get("HTTP_HOST", "")
        if not host_allowed(host, web_allow_hosts()):
            err = f"Host {host!r} is not allowed; add it to web_allow_hosts"
            body = go_json.encode_document(error_body(403, 100, "host not allowed", err))
            return HttpResponse(body, status=403, content_type="application/json")
        return self.get_response(request)
