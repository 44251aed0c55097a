"""The inspector's WebSocket route; the project's routing (dashboard/routing.py) includes it."""

from __future__ import annotations

from django.urls import path

from .consumers import InspectorConsumer

websocket_urlpatterns = [
    path("ws/inspector", InspectorConsumer.as_asgi()),  # type: ignore[arg-type]  # an ASGI app, as Channels routes take
]
