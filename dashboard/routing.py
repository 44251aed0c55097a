"""WebSocket routes (HTTP routes are in urls.py)."""

from __future__ import annotations

from django.urls import path

from .consumers import InspectorConsumer

websocket_urlpatterns = [
    path("ws/inspector", InspectorConsumer.as_asgi()),
]
