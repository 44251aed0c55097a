"""The ngrok agent API as DRF viewsets over the Tunnel and Capture models.

Views run in Django's worker thread; they reach the engine (on the event loop) through
`async_to_sync` and never touch sockets themselves.

Every view refuses a body that is not JSON before it does anything, whether or not it reads the
body (the real agent's defence against cross-site form posts): see `JSONBodiesOnly`. OPTIONS on
any resource answers 204 with `Allow` and no body (no CORS headers: a cross-site page still may
not call the API). The OpenAPI description of every operation is in api_schema.py, served at
/api/schema.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import api_schema as doc
from .definitions import decoded_like_go, endpoint_definition, tunnel_definition
from .engine.engine import ReplayRefused, TunnelExists, TunnelStartError
from .engine.tunnel_spec import TunnelConfigError, parse_definition
from .errors import (
    AgentUnavailable,
    BadRequest,
    InvalidTunnelConfig,
    NotJSON,
    RequestNotFound,
    ResourceNotFound,
    TunnelNotFound,
    TunnelOwnedElsewhere,
    TunnelStartFailed,
)
from .go_json import GoJSONRenderer
from .models import Capture, Tunnel
from .runtime import AgentRuntime, PeerUnavailable, current_runtime
from .serializers import CaptureSerializer, EndpointSerializer, TunnelSerializer

DEFAULT_REQUEST_LIMIT = 100
MAX_REQUEST_LIMIT = 10000

log = logging.getLogger(__name__)


class JSONBodiesOnly(APIView):
    """The base of the API's views: refuse, before the handler runs, a request whose body is not JSON.

    A Content-Type other than application/json is refused on any method that changes something and
    on any request with a body; a body without a Content-Type is refused on those methods too. A GET
    with `Content-Type: application/json` and no body (pyngrok) and a DELETE with a `{}` JSON body
    (npm) pass. OPTIONS answers 204 with Allow.
    """

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        # Not DRF's metadata (it asks serializers for fields these views do not have): the methods
        # in Allow, nothing else.
        return Response(status=status.HTTP_204_NO_CONTENT, headers={"Allow": ", ".join(self.allowed_methods)})

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        has_body = request.META.get("CONTENT_LENGTH") not in (None, "", "0") or (
            "HTTP_TRANSFER_ENCODING" in request.META
        )
        changes = request.method not in permissions.SAFE_METHODS
        if media_type and media_type != "application/json" and (changes or has_body):
            raise NotJSON(media_type)
        if not media_type and has_body and changes:
            raise NotJSON("")


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
    tunnel = Tunnel.objects.filter(name=name).first()
    if tunnel is None:
        raise TunnelNotFound(name)
    runtime = _runtime()
    try:
        if tunnel.agent_id == runtime.agent_id:
            async_to_sync(runtime.stop_tunnel)(name)
        else:
            # Several agents share the database; the one holding the listener closes it.
            async_to_sync(runtime.stop_elsewhere)(tunnel)
    except KeyError:
        raise TunnelNotFound(name) from None
    except PeerUnavailable as error:
        raise TunnelOwnedElsewhere(str(error)) from None


def _tunnel(name: str) -> Tunnel:
    tunnel = Tunnel.objects.filter(name=name).first()
    if tunnel is None:
        raise TunnelNotFound(name)
    return tunnel


class TunnelViewSet(JSONBodiesOnly, viewsets.GenericViewSet):
    queryset = Tunnel.objects.all()
    serializer_class = TunnelSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="tunnels_list", summary="List tunnels", responses=doc.responses({200: doc.ok("TunnelList")})
    )
    def list(self, request: Request) -> Response:
        tunnels = TunnelSerializer(self.get_queryset(), many=True).data
        return Response({"tunnels": tunnels, "uri": "/api/tunnels"})

    @extend_schema(
        operation_id="tunnels_create",
        summary="Start a tunnel",
        request={"application/json": doc.ref("TunnelDefinition")},
        responses=doc.responses(
            {201: doc.ok("Tunnel")},
            e502="The listener could not be opened (error_code 103).",
            e503="No tunnel engine runs in this process.",
        ),
    )
    def create(self, request: Request) -> Response:
        try:
            definition = tunnel_definition(decoded_like_go(request.data))
        except TunnelConfigError as error:
            raise InvalidTunnelConfig(str(error)) from None
        tunnel = _start(definition)
        return Response(TunnelSerializer(tunnel).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="tunnels_retrieve",
        summary="One tunnel",
        parameters=[doc.NAME],
        responses=doc.responses({200: doc.ok("Tunnel")}, e404="No such tunnel."),
    )
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(TunnelSerializer(_tunnel(name)).data)

    @extend_schema(
        operation_id="tunnels_destroy",
        summary="Stop a tunnel",
        parameters=[doc.NAME],
        responses=doc.responses(
            {204: doc.ok(None, "Stopped.")},
            e404="No such tunnel.",
            e409="Another agent runs it and cannot be reached.",
            e503="No tunnel engine runs in this process.",
        ),
    )
    def destroy(self, request: Request, name: str) -> Response:
        _stop(name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointViewSet(JSONBodiesOnly, viewsets.GenericViewSet):
    queryset = Tunnel.objects.all()
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="endpoints_list", summary="List endpoints", responses=doc.responses({200: doc.ok("EndpointList")})
    )
    def list(self, request: Request) -> Response:
        return Response({"endpoints": EndpointSerializer(self.get_queryset(), many=True).data, "uri": "/api/endpoints"})

    @extend_schema(
        operation_id="endpoints_create",
        summary="Start an endpoint",
        request={"application/json": doc.ref("EndpointDefinition")},
        responses=doc.responses(
            {201: doc.ok("Endpoint")},
            e502="The listener could not be opened (error_code 103).",
            e503="No tunnel engine runs in this process.",
        ),
    )
    def create(self, request: Request) -> Response:
        tunnel = self._start(decoded_like_go(request.data))
        return Response(EndpointSerializer(tunnel, context={"detail": True}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="endpoints_retrieve",
        summary="One endpoint",
        parameters=[doc.NAME],
        responses=doc.responses({200: doc.ok("Endpoint")}, e404="No such endpoint."),
    )
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(EndpointSerializer(_tunnel(name), context={"detail": True}).data)

    @extend_schema(
        operation_id="endpoints_update",
        summary="Replace or create an endpoint",
        parameters=[doc.NAME],
        request={"application/json": doc.ref("EndpointDefinition")},
        responses=doc.responses(
            {200: doc.ok("Endpoint", "Replaced."), 201: doc.ok("Endpoint", "Created.")},
            e409="Another agent runs it and cannot be reached.",
            e502="The listener could not be opened (error_code 103); the old endpoint runs on.",
            e503="No tunnel engine runs in this process.",
        ),
    )
    def update(self, request: Request, name: str) -> Response:
        body = decoded_like_go(request.data)
        # Check the whole new definition before stopping the old endpoint, so a bad PUT changes nothing.
        definition = self._definition(body, name)
        try:
            parse_definition(definition, name=name, public_host=settings.AGENT_PUBLIC_HOST)
        except TunnelConfigError as error:
            raise InvalidTunnelConfig(str(error)) from None
        old = Tunnel.objects.filter(name=name).first()
        running = _runtime().engine.tunnel(name) if old is not None else None
        if old is not None:
            _stop(name)
        try:
            tunnel = self._start(body, name=name)
        except Exception:
            # The new one could not start (port in use, a bad value): put the old endpoint back.
            if old is not None and running is not None:
                self._restore(old, running.spec.definition)
            raise
        code = status.HTTP_201_CREATED if old is None else status.HTTP_200_OK
        return Response(EndpointSerializer(tunnel, context={"detail": True}).data, status=code)

    @extend_schema(
        operation_id="endpoints_destroy",
        summary="Stop an endpoint",
        parameters=[doc.NAME],
        responses=doc.responses(
            {204: doc.ok(None, "Stopped.")},
            e404="No such endpoint.",
            e409="Another agent runs it and cannot be reached.",
            e503="No tunnel engine runs in this process.",
        ),
    )
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
        try:
            Tunnel.objects.filter(pk=tunnel.pk).update(definition=tunnel.definition)
        except Exception:
            _stop(tunnel.name)  # no listener left running without its row
            raise
        return tunnel

    def _restore(self, old: Tunnel, definition: dict[str, Any]) -> None:
        try:
            restored = _start(definition, name=old.name)
        except (InvalidTunnelConfig, TunnelStartFailed) as error:
            log.warning("could not restore endpoint %s after a failed PUT: %s", old.name, error.err)
            return
        Tunnel.objects.filter(pk=restored.pk).update(definition=old.definition)


class CaptureViewSet(JSONBodiesOnly, viewsets.GenericViewSet):
    queryset = Capture.objects.all()
    serializer_class = CaptureSerializer
    lookup_field = "id"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="requests_list",
        summary="Captured requests, newest first",
        parameters=[doc.LIMIT, doc.TUNNEL_NAME],
        responses=doc.responses({200: doc.ok("CaptureList")}),
    )
    def list(self, request: Request) -> Response:
        _flush_captures()
        captures = self.get_queryset().order_by("-id")
        tunnel_name = request.query_params.get("tunnel_name")
        if tunnel_name:
            captures = captures.filter(tunnel_name=tunnel_name)
        limit = _limit(request.query_params.get("limit"))
        data = CaptureSerializer(captures[:limit], many=True).data
        return Response({"uri": "/api/requests/http", "requests": data})

    @extend_schema(
        operation_id="requests_retrieve",
        summary="One captured request",
        parameters=[doc.CAPTURE_ID],
        responses=doc.responses({200: doc.ok("Capture")}, e404="No such capture."),
    )
    def retrieve(self, request: Request, id: str) -> Response:
        _flush_captures()
        capture = Capture.objects.filter(id=id).first()
        if capture is None:
            raise RequestNotFound(id)
        return Response(CaptureSerializer(capture).data)

    @extend_schema(
        operation_id="requests_replay",
        summary="Replay a captured request",
        request={"application/json": doc.ref("Replay")},
        responses=doc.responses(
            {204: doc.ok(None, "Replayed and recorded.")},
            e404="No such capture or tunnel.",
            e503="No tunnel engine runs in this process.",
        ),
    )
    def replay(self, request: Request) -> Response:
        body = decoded_like_go(request.data)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise BadRequest('a JSON object with the "id" of a captured request is required')
        _flush_captures()
        capture = Capture.objects.filter(id=body["id"]).first()
        if capture is None:
            raise RequestNotFound(body["id"])
        # pyngrok sends tunnel_name (null when unset); npm sends tunnelName.
        tunnel_name = body.get("tunnel_name") or body.get("tunnelName") or capture.tunnel_name
        if not isinstance(tunnel_name, str):
            raise BadRequest("tunnel_name must be a string")
        runtime = _runtime()
        target = runtime.engine.tunnel(tunnel_name)
        if target is None:
            raise TunnelNotFound(tunnel_name)
        if target.http is None:
            raise BadRequest(f'tunnel "{tunnel_name}" is {target.spec.proto}: only http tunnels replay requests')
        try:
            async_to_sync(runtime.replay)(capture, tunnel_name)
        except ReplayRefused as error:  # cut at the capture limit, or never crossed whole
            raise BadRequest(str(error)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="requests_clear",
        summary="Delete every capture",
        responses=doc.responses({204: doc.ok(None, "Deleted.")}),
    )
    def clear(self, request: Request) -> Response:
        runtime = current_runtime()
        if runtime is not None:
            async_to_sync(runtime.clear_captures)()
        else:
            Capture.objects.all().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _flush_captures() -> None:
    """Store the captures still waiting in the sink: clients list right after a request and expect it."""
    runtime = current_runtime()
    if runtime is not None and runtime.sink is not None:
        async_to_sync(runtime.sink.flush)()


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_REQUEST_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be a whole number, got {raw!r}") from None
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    return min(limit, MAX_REQUEST_LIMIT)


class StatusView(JSONBodiesOnly, APIView):
    @extend_schema(operation_id="status", summary="Agent status", responses=doc.responses({200: doc.ok("Status")}))
    def get(self, request: Request) -> Response:
        return Response(
            {
                "status": "online",
                "agent_version": settings.AGENT_VERSION,
                "session": {"legs": [{"region": "local", "latency": "0ms"}]},
                "uri": "/api/status",
            }
        )


class RootView(JSONBodiesOnly, APIView):
    @extend_schema(
        operation_id="root", summary="The resources of this API", responses=doc.responses({200: doc.ok("Root")})
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "tunnels": {"uri": "/api/tunnels"},
                "endpoints": {"uri": "/api/endpoints"},
                "requests": {"uri": "/api/requests/http"},
                "status": {"uri": "/api/status"},
                "schema": {"uri": "/api/schema"},
                "uri": "/api/",
            }
        )


class SchemaView(JSONBodiesOnly, SpectacularAPIView):
    """GET /api/schema: the OpenAPI 3 description of this API (JSON; `?format=yaml` for YAML)."""

    renderer_classes = [OpenApiJsonRenderer, OpenApiYamlRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        # Errors in the API's one error shape, as JSON, whatever format the schema was asked in.
        response = super().handle_exception(exc)
        self.request.accepted_renderer = GoJSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response


@extend_schema(exclude=True)
class UnknownResourceView(APIView):
    """Any other path under /api/: a 404 in the error shape (never Django's HTML page), any method."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise ResourceNotFound(request.path)
