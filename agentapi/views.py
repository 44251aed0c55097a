"""The ngrok agent API as DRF viewsets over the Tunnel and Capture models.

Views run in Django's worker thread; they act through the runtime facade (agentapi/runtime.py, on
the event loop) with `async_to_sync`, and turn its named errors into ngrok's error shape in one place
(`_runtime_errors`). They never touch the engine or sockets themselves.

Every view refuses a body that is not JSON before it does anything, whether or not it reads the
body (the real agent's defence against cross-site form posts): see `JSONBodiesOnly`. OPTIONS on
any resource answers 204 with `Allow` and no body (no CORS headers: a cross-site page still may
not call the API). The OpenAPI description of every operation is in api_schema.py, served at
/api/schema.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import api_schema as doc
from .capture_erasure import erase
from .definitions import decoded_like_go, endpoint_definition, tunnel_definition
from .engine.websocket_frames import OPCODE_NAMES
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
from .models import Capture, Tunnel, WebSocketFrame, WebSocketTotals
from .runtime import (
    AgentRuntime,
    PeerUnavailable,
    ReplayRefused,
    TunnelConfigError,
    TunnelExists,
    TunnelInfo,
    TunnelNotRunning,
    TunnelStartError,
    current_runtime,
)
from .serializers import EndpointSerializer, TunnelSerializer, capture_document, capture_list_document

DEFAULT_REQUEST_LIMIT = 100
MAX_REQUEST_LIMIT = 10000


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


@contextlib.contextmanager
def _runtime_errors() -> Iterator[None]:
    """The runtime's named errors as the API answers them (ngrok's error shape, errors.py)."""
    try:
        yield
    except (TunnelConfigError, TunnelExists) as error:
        raise InvalidTunnelConfig(str(error)) from None
    except TunnelStartError as error:
        raise TunnelStartFailed(str(error)) from None
    except TunnelNotRunning as error:
        raise TunnelNotFound(error.name) from None
    except PeerUnavailable as error:
        raise TunnelOwnedElsewhere(str(error)) from None
    except ReplayRefused as error:  # cut at the capture limit, never crossed whole, not an http tunnel
        raise BadRequest(str(error)) from None


def _metrics() -> dict[str, dict[str, Any]]:
    """The metrics of every tunnel this process runs, taken on the event loop, for the serializers."""
    runtime = current_runtime()
    if runtime is None:
        return {}
    return {tunnel.name: tunnel.metrics for tunnel in async_to_sync(runtime.tunnels)()}


def _start(definition: dict[str, Any], *, shown: dict[str, Any] | None = None) -> TunnelInfo:
    runtime = _runtime()
    with _runtime_errors():
        started = async_to_sync(runtime.start_tunnel)(definition, shown_definition=shown)
    return started[0]


def _started_row(started: TunnelInfo) -> Tunnel:
    """The row of a tunnel the runtime just started, for the tunnel's answer (its ID is only there).

    A DELETE of the same name may land between the start and this read: the tunnel was stopped,
    and the answer is the 404 a later GET would give, not a 500 from `get`.
    """
    tunnel = Tunnel.objects.filter(name=started.name).first()
    if tunnel is None:
        raise TunnelNotFound(started.name)
    return tunnel


def _endpoint(started: TunnelInfo, shown: dict[str, Any]) -> tuple[Tunnel, dict[str, Any]]:
    """An endpoint the runtime just started or swapped, and its serializer context, from what the
    runtime returned and the definition as posted: no read of its row, which a concurrent DELETE
    may already have removed (the start happened; ngrok answers it as started)."""
    tunnel = Tunnel(
        name=started.name,
        public_url=started.public_url,
        proto=started.proto,
        addr=started.addr,
        inspect=started.inspect,
        definition=shown,
    )
    return tunnel, {"detail": True, "metrics": {started.name: started.metrics}}


def _stop(name: str) -> None:
    # Several agents may share the database: the runtime routes the stop to the one that runs it.
    runtime = _runtime()
    with _runtime_errors():
        async_to_sync(runtime.stop_tunnel)(name)


def _tunnel(name: str) -> Tunnel:
    tunnel = Tunnel.objects.filter(name=name).first()
    if tunnel is None:
        raise TunnelNotFound(name)
    return tunnel


def _as_posted(definition: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What an endpoint's row keeps: its upstream.url is echoed back as sent."""
    return {**definition, "upstream": body["upstream"], "endpoint": True}


def _detail() -> dict[str, Any]:
    """The endpoint serializer's context for one endpoint: with its metrics."""
    return {"detail": True, "metrics": _metrics()}


class TunnelViewSet(JSONBodiesOnly, viewsets.GenericViewSet):
    queryset = Tunnel.objects.all()
    serializer_class = TunnelSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="tunnels_list", summary="List tunnels", responses=doc.responses({200: doc.ok("TunnelList")})
    )
    def list(self, request: Request) -> Response:
        tunnels = TunnelSerializer(self.get_queryset(), many=True, context={"metrics": _metrics()}).data
        return Response({"tunnels": tunnels, "uri": "/api/tunnels"})

    @extend_schema(
        operation_id="tunnels_create",
        summary="Start a tunnel",
        request={"application/json": doc.ref("TunnelDefinition")},
        responses=doc.responses(
            {201: doc.ok("Tunnel")},
            e404="A DELETE of the same name stopped it before it could be answered.",
            e502="The listener could not be opened (error_code 103).",
            e503="No tunnel engine runs in this process.",
        ),
    )
    def create(self, request: Request) -> Response:
        try:
            definition = tunnel_definition(decoded_like_go(request.data))
        except TunnelConfigError as error:
            raise InvalidTunnelConfig(str(error)) from None
        tunnel = _started_row(_start(definition))
        return Response(TunnelSerializer(tunnel, context={"metrics": _metrics()}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="tunnels_retrieve",
        summary="One tunnel",
        parameters=[doc.NAME],
        responses=doc.responses({200: doc.ok("Tunnel")}, e404="No such tunnel."),
    )
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(TunnelSerializer(_tunnel(name), context={"metrics": _metrics()}).data)

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
        body = decoded_like_go(request.data)
        definition = self._definition(body, None)
        shown = _as_posted(definition, body)
        tunnel, context = _endpoint(_start(definition, shown=shown), shown)
        return Response(EndpointSerializer(tunnel, context=context).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="endpoints_retrieve",
        summary="One endpoint",
        parameters=[doc.NAME],
        responses=doc.responses({200: doc.ok("Endpoint")}, e404="No such endpoint."),
    )
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(EndpointSerializer(_tunnel(name), context=_detail()).data)

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
        definition = self._definition(body, name)
        runtime = _runtime()
        # The runtime checks the whole new definition before it stops the old endpoint, and puts
        # the old one back if the new listener cannot open: a failed PUT changes nothing.
        shown = _as_posted(definition, body)
        with _runtime_errors():
            replacement = async_to_sync(runtime.replace_tunnel)(name, definition, shown_definition=shown)
        tunnel, context = _endpoint(replacement.tunnels[0], shown)
        code = status.HTTP_200_OK if replacement.replaced else status.HTTP_201_CREATED
        return Response(EndpointSerializer(tunnel, context=context).data, status=code)

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


class CaptureViewSet(JSONBodiesOnly, viewsets.GenericViewSet):
    queryset = Capture.objects.all()
    lookup_field = "id"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="requests_list",
        summary="Captured requests, newest first",
        parameters=[doc.LIMIT, doc.TUNNEL_NAME],
        responses=doc.responses({200: doc.ok("CaptureList")}),
    )
    def list(self, request: Request) -> HttpResponse:
        _flush_captures()
        captures = self.get_queryset().order_by("-id")
        tunnel_name = request.query_params.get("tunnel_name")
        if tunnel_name:
            captures = captures.filter(tunnel_name=tunnel_name)
        limit = _limit(request.query_params.get("limit"))
        return _json(capture_list_document(captures[:limit]))

    @extend_schema(
        operation_id="requests_retrieve",
        summary="One captured request",
        parameters=[doc.CAPTURE_ID],
        responses=doc.responses({200: doc.ok("Capture")}, e404="No such capture."),
    )
    def retrieve(self, request: Request, id: str) -> HttpResponse:
        _flush_captures()
        capture = Capture.objects.filter(id=id).first()
        if capture is None:
            raise RequestNotFound(id)
        return _json(capture_document(capture))

    @extend_schema(
        operation_id="requests_websocket",
        summary="The WebSocket frames of a captured Upgrade (ours)",
        description=(
            "Ours, not ngrok's: the frames of a capture whose service answered 101 to a WebSocket Upgrade, in"
            " the order their headers were read, both directions. Each payload is base64 of its first bytes"
            " (unmasked), up to the connection's budget (1000 frames, 256 KiB); `truncated` says it was cut."
            " `totals` counts every frame, recorded or not (null for a capture that has none). `after=N` gives"
            " only frames with a larger seq."
        ),
        parameters=[doc.CAPTURE_ID, doc.AFTER_SEQ],
        responses=doc.responses({200: doc.ok("WebSocketFrames")}, e404="No such capture."),
    )
    def websocket(self, request: Request, id: str) -> Response:
        _flush_captures()
        if not Capture.objects.filter(id=id).exists():
            raise RequestNotFound(id)
        after = _after(request.query_params.get("after"))
        frames = WebSocketFrame.objects.filter(capture_id=id, seq__gt=after).order_by("seq")
        totals = WebSocketTotals.objects.filter(capture_id=id).first()
        return Response(
            {
                "uri": f"/api/requests/http/{id}/websocket",
                "id": id,
                "totals": None
                if totals is None
                else {
                    "client_frames": totals.client_frames,
                    "server_frames": totals.server_frames,
                    "client_bytes": totals.client_bytes,
                    "server_bytes": totals.server_bytes,
                    "recorded": totals.recorded,
                    "stopped": totals.stopped,
                },
                "frames": [_frame(frame) for frame in frames],
            }
        )

    @extend_schema(
        operation_id="requests_replay",
        summary="Replay a captured request",
        description=(
            "Straight to the tunnel's local service, bypassing its Traffic Policy as ngrok's inspector does."
            " Ours: `through_policy: true` runs the tunnel's on_http_request rules on it first, as for a"
            " client on 127.0.0.1 (its answer or changes, and the steps in the new capture's `traffic_policy`)."
        ),
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
        # Ours, not ngrok's: replay through the tunnel's Traffic Policy (null counts as absent).
        through_policy = body.get("through_policy")
        if through_policy is not None and not isinstance(through_policy, bool):
            raise BadRequest("through_policy must be true or false")
        _flush_captures()
        capture = Capture.objects.filter(id=body["id"]).first()
        if capture is None:
            raise RequestNotFound(body["id"])
        # pyngrok sends tunnel_name (null when unset); npm sends tunnelName.
        tunnel_name = body.get("tunnel_name") or body.get("tunnelName") or capture.tunnel_name
        if not isinstance(tunnel_name, str):
            raise BadRequest("tunnel_name must be a string")
        runtime = _runtime()
        with _runtime_errors():
            async_to_sync(runtime.replay)(capture, tunnel_name, through_policy=bool(through_policy))
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
            erase(Capture.objects.all())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _json(document: bytes) -> HttpResponse:
    """A document already written as GoJSONRenderer writes it (the capture lists are written
    without DRF's serializer and renderer: issue 11). Content negotiation has run in `initial`."""
    return HttpResponse(document, content_type="application/json")


def _flush_captures() -> None:
    """Store the captures still waiting in the sink: clients list right after a request and expect it."""
    runtime = current_runtime()
    if runtime is not None:
        async_to_sync(runtime.flush_captures)()


def _frame(frame: WebSocketFrame) -> dict[str, Any]:
    payload = bytes(frame.payload)
    return {
        "seq": frame.seq,
        "direction": frame.direction,
        "time": frame.time,
        "opcode": frame.opcode,
        "opcode_name": OPCODE_NAMES.get(frame.opcode, str(frame.opcode)),
        "fin": frame.fin,
        "compressed": frame.compressed,
        "size": frame.size,
        "payload": base64.b64encode(payload).decode("ascii"),
        "truncated": len(payload) < frame.size,
        "close_code": frame.close_code,
        "close_reason": payload[2:].decode("utf-8", "replace") if frame.close_code is not None else "",
    }


def _after(raw: str | None) -> int:
    if raw is None or raw == "":
        return -1
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"after must be a whole number, got {raw!r}") from None


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
