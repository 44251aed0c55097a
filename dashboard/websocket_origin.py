"""The WebSocket side of the DNS-rebinding and cross-site defence (HTTP has HostAllowListMiddleware).

A WebSocket handshake is let through only when
- its Host is allowed (localhost, 127.0.0.1, [::1] or a `web_allow_hosts` entry), and
- it has an Origin, and that Origin is the page's own (same host and port as Host), or its host is
  listed in `web_allow_hosts` explicitly.
Browsers always send Origin on a WebSocket; a page of another site, or of another port on localhost,
cannot read captures. Everything else is refused before the consumer runs (HTTP 403).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier

from agentapi.host_allow_list import host_allowed, web_allow_hosts


def origin_allowed(host: str, origin: str | None, allow: list[str]) -> bool:
    if not host_allowed(host, allow):
        return False
    if not origin:
        return False
    netloc = urlsplit(origin).netloc.lower()
    if not netloc:
        return False  # "null" and other opaque origins
    if netloc == host.strip().lower():
        return True
    # Another origin only when the user listed its host: localhost itself is always allowed as a
    # Host, but a page on another localhost port is another site.
    always_allowed = host_allowed(netloc, [])
    return not always_allowed and host_allowed(netloc, allow)


class WebSocketOriginValidator:
    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            host = origin = None
            for name, value in scope.get("headers", []):
                if name == b"host":
                    host = value.decode("latin-1")
                elif name == b"origin":
                    origin = value.decode("latin-1")
            # Read on every handshake: settings may be overridden, and the config file's entries
            # come with the running agent.
            if not origin_allowed(host or "", origin, web_allow_hosts()):
                # The raw ASGI scope, as Channels passes it; its stubs name it a TypedDict of their own.
                return await WebsocketDenier()(scope, receive, send)  # type: ignore[arg-type]
        return await self.application(scope, receive, send)
