"""Explicit routes: the wire format dictates the paths (no trailing slash, but accepted).

Tunnel and endpoint names may hold any character. The server hands us the path already
percent-decoded, so a name escaped as `a%2Fb` arrives as `a/b`: the name pattern takes slashes
(shortest match first, so `/api/tunnels/x/` still names `x`). Any other path under /api/ answers
404 in the error shape.
"""

from __future__ import annotations

from django.urls import re_path

from . import views

_NAME = r"(?P<name>[\s\S]+?)"  # any character, newline too: such a name is then refused or not found

tunnels = views.TunnelViewSet.as_view({"get": "list", "post": "create"})
tunnel = views.TunnelViewSet.as_view({"get": "retrieve", "delete": "destroy"})
endpoints = views.EndpointViewSet.as_view({"get": "list", "post": "create"})
endpoint = views.EndpointViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})
captures = views.CaptureViewSet.as_view({"get": "list", "post": "replay", "delete": "clear"})
capture = views.CaptureViewSet.as_view({"get": "retrieve"})
capture_websocket = views.CaptureViewSet.as_view({"get": "websocket"})

urlpatterns = [
    re_path(r"^$", views.RootView.as_view(), name="api-root"),
    re_path(r"^tunnels/?$", tunnels, name="tunnels"),
    re_path(rf"^tunnels/{_NAME}/?$", tunnel, name="tunnel"),
    re_path(r"^endpoints/?$", endpoints, name="endpoints"),
    re_path(rf"^endpoints/{_NAME}/?$", endpoint, name="endpoint"),
    re_path(r"^requests/http/?$", captures, name="captures"),
    re_path(r"^requests/http/(?P<id>[^/]+)/?$", capture, name="capture"),
    re_path(r"^requests/http/(?P<id>[^/]+)/websocket/?$", capture_websocket, name="capture-websocket"),
    re_path(r"^status/?$", views.StatusView.as_view(), name="status"),
    re_path(r"^schema/?$", views.SchemaView.as_view(), name="schema"),
    re_path(r"", views.UnknownResourceView.as_view(), name="api-unknown"),
]
