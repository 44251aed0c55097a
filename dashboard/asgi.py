"""ASGI entry: Django for HTTP (API, inspector, admin, static files), Channels consumers for WebSockets.

Static files are served by Django's static handler (finders, no collectstatic step): the agent is a
single local process, and the inspector must work from a fresh checkout with DEBUG off.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
django_application = get_asgi_application()

# Django must be set up before these imports.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from .routing import websocket_urlpatterns  # noqa: E402
from .websocket_origin import WebSocketOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_application),
        "websocket": WebSocketOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
