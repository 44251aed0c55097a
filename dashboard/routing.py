"""The process's WebSocket routes (HTTP routes are in urls.py): each app's routes, then a catch-all.

A handshake to any other path is refused with 404 (no consumer, no traceback): Channels' URLRouter
raises on a path it cannot route, which the server would log as a crash and answer with 500.
"""

from __future__ import annotations

from typing import Any

from django.urls import re_path

from .inspector import routing as inspector_routing

_NOT_FOUND = b"no WebSocket endpoint at this path\n"


async def unknown_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuse the handshake: 404 where the server can send an HTTP answer, else a close (403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(_NOT_FOUND))]
        await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": _NOT_FOUND})
    else:
        await send({"type": "websocket.close", "code": 1008})


websocket_urlpatterns = [
    *inspector_routing.websocket_urlpatterns,
    re_path(r"", unknown_path),  # type: ignore[arg-type]  # an ASGI app, as Channels routes take
]
