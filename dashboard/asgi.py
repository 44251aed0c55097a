"""ASGI entry: Django for HTTP (API, inspector, admin, static files), Channels consumers for WebSockets.

Static files are served by Django's static handler (finders, no collectstatic step): the agent is a
single local process, and the inspector must work from a fresh checkout with DEBUG off.

A WebSocket handshake is checked for its Origin first, then routed; a path with no consumer is
refused with 404 (dashboard/routing.py). Each handshake gives one log line, uvicorn's
(`"WebSocket /ws/x" 404`, or `[accepted]`): the websockets library's own "connection open /
rejected / closed" lines, which repeat it, are dropped.
"""

from __future__ import annotations

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
django_application = get_asgi_application()

# Django must be set up before these imports.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from .routing import websocket_urlpatterns  # noqa: E402
from .websocket_origin import WebSocketOriginValidator  # noqa: E402


class WebSocketLibraryEcho(logging.Filter):
    """Drops the websockets library's INFO lines that repeat uvicorn's line for the same handshake."""

    ECHOES = frozenset({"connection open", "connection closed", "connection rejected (%d %s)"})

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and record.msg in self.ECHOES)


# uvicorn hands its "uvicorn.error" logger to the websockets library.
logging.getLogger("uvicorn.error").addFilter(WebSocketLibraryEcho())

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_application),
        # django.urls.path types its result as a view's URLPattern; Channels routes the ASGI app it holds.
        "websocket": WebSocketOriginValidator(URLRouter(websocket_urlpatterns)),  # type: ignore[arg-type]
    }
)
