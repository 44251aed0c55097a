"""The ngrok agent API as DRF viewsets over the Tunnel and Capture models.

Views run in Django's worker thread; they reach the engine (on the event loop) through
`async_to_sync` and never touch sockets themselves.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .definitions import endpoint_definition, tunnel_definition
from .engine.engine import TunnelExists, TunnelStartError
from .engine.tunnel_spec import TunnelConfigError
from .errors import (
    AgentUnavailable,
    BadRequest,
    InvalidTunnelConfig,
    RequestNotFound,
    TunnelNotFound,
    TunnelStartFailed,
)
from .models import Capture, Tunnel
from .runtime import AgentRuntime, current_runtime
from .serializers import CaptureSerializer, EndpointSerializer, TunnelSerializer

DEFAULT_REQUEST_LIMIT = 100
MAX_REQUEST_LIMIT = 10000


def _runtime() -> AgentRuntime:
    runtime = current_runtime()
    if runtime is None:
        raise AgentUnavailable("no tunnel engine runs in this process")
    return runtime


def _start(definition: dict[str, Any], *, name: str | None = None) -> Tunnel:
    runtime = _runtime()
    try:
        started = async_to_sync(runtime.start_tunnel)(definition, name)
    except TunnelConfigError as error:
        raise InvalidTunnelConfig(str(error)) from None
    except TunnelExists as error:
        raise InvalidTunnelConfig(str(error)) from None
    except TunnelStartError as error:
        raise TunnelStartFailed(str(error)) from None
    return Tunnel.objects.get(name=started[0].name)


def _stop(name: str) -> None:
    if not Tunnel.objects.filter(name=name).exists():
        raise TunnelNotFound(name)
    try:
        async_to_sync(_runtime().stop_tunnel)(name)
    except KeyError:
        raise TunnelNotFound(name) from None


def _tunnel(name: str) -> Tunnel:
    tunnel = Tunnel.objects.filter(name=name).first()
    if tunnel is None:
        raise TunnelNotFound(name)
    return tunnel


class TunnelViewSet(viewsets.GenericViewSet):
    queryset = Tunnel.objects.all()
    serializer_class = TunnelSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def list(self, request: Request) -> Response:
        tunnels = TunnelSerializer(self.get_queryset(), many=True).data
        return Response({"tunnels": tunnels, "uri": "/api/tunnels"})

    def create(self, request: Request) -> Response:
        try:
            definition = tunnel_definition(request.data)
        except TunnelConfigError as error:
            raise InvalidTunnelConfig(str(error)) from None
        tunnel = _start(definition)
        return Response(TunnelSerializer(tunnel).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(TunnelSerializer(_tunnel(name)).data)

    def destroy(self, request: Request, name: str) -> Response:
        _stop(name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointViewSet(viewsets.GenericViewSet):
    queryset = Tunnel.objects.all()
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def list(self, request: Request) -> Response:
        return Response({"endpoints": EndpointSerializer(self.get_queryset(), many=True).data, "uri": "/api/endpoints"})

    def create(self, request: Request) -> Response:
        tunnel = self._start(request.data)
        return Response(EndpointSerializer(tunnel, context={"detail": True}).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(EndpointSerializer(_tunnel(name), context={"detail": True}).data)

    def update(self, request: Request, name: str) -> Response:
        # Check the new definition before stopping the old endpoint, so a bad PUT changes nothing.
        self._definition(request.data, name)
        existed = Tunnel.objects.filter(name=name).exists()
        if existed:
            _stop(name)
        tunnel = self._start(request.data, name=name)
        code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        return Response(EndpointSerializer(tunnel, context={"detail": True}).data, status=code)

    def destroy(self, request: Request, name: str) -> Response:
        _stop(name)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _definition(self, body: Any, name: str | None) -> dict[str, Any]:
        try:
            return endpoint_definition(body, name=name)
        except TunnelConfigError as error:
            raise InvalidTunnelConfig(str(error)) from None

    def _start(self, body: Any, name: str | None = None) -> Tunnel:
        definition = self._definition(body, name)
        tunnel = _start(definition)
        # Keep the endpoint as posted: its upstream.url is echoed back as sent.
        tunnel.definition = {**definition, "upstream": body["upstream"], "endpoint": True}
        Tunnel.objects.filter(pk=tunnel.pk).update(definition=tunnel.definition)
        return tunnel


class CaptureViewSet(viewsets.GenericViewSet):
    queryset = Capture.objects.all()
    serializer_class = CaptureSerializer
    lookup_field = "id"
    lookup_value_regex = "[^/]+"

    def list(self, request: Request) -> Response:
        captures = self.get_queryset().order_by("-id")
        tunnel_name = request.query_params.get("tunnel_name")
        if tunnel_name:
            captures = captures.filter(tunnel_name=tunnel_name)
        limit = _limit(request.query_params.get("limit"))
        data = CaptureSerializer(captures[:limit], many=True).data
        return Response({"uri": "/api/requests/http", "requests": data})

    def retrieve(self, request: Request, id: str) -> Response:
        capture = Capture.objects.filter(id=id).first()
        if capture is None:
            raise RequestNotFound(id)
        return Response(CaptureSerializer(capture).data)

    def replay(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise BadRequest('a JSON object with the "id" of a captured request is required')
        capture = Capture.objects.filter(id=body["id"]).first()
        if capture is None:
            raise RequestNotFound(body["id"])
        # pyngrok sends tunnel_name (null when unset); npm sends tunnelName.
        tunnel_name = body.get("tunnel_name") or body.get("tunnelName") or capture.tunnel_name
        runtime = _runtime()
        if runtime.engine.tunnel(tunnel_name) is None:
            raise TunnelNotFound(tunnel_name)
        if capture.request_truncated:
            raise BadRequest(
                f"cannot replay {capture.id}: only {len(capture.request_raw)} of {capture.request_size} bytes"
                " of the request were captured (raise AGENT_CAPTURE_LIMIT)"
            )
        async_to_sync(runtime.replay)(capture, tunnel_name)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def clear(self, request: Request) -> Response:
        runtime = current_runtime()
        if runtime is not None:
            async_to_sync(runtime.clear_captures)()
        else:
            Capture.objects.all().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_REQUEST_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be a whole number, got {raw!r}") from None
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    return min(limit, MAX_REQUEST_LIMIT)


class StatusView(APIView):
    def get(self, request: Request) -> Response:
        return Response(
            {
                "status": "online",
                "agent_version": settings.AGENT_VERSION,
                "session": {"legs": [{"region": "local", "latency": "0ms"}]},
                "uri": "/api/status",
            }
        )


class RootView(APIView):
    def get(self, request: Request) -> Response:
        return Response(
            {
                "tunnels": {"uri": "/api/tunnels"},
                "endpoints": {"uri": "/api/endpoints"},
                "requests": {"uri": "/api/requests/http"},
                "status": {"uri": "/api/status"},
                "uri": "/api/",
            }
        )
