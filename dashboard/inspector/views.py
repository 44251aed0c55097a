"""The inspector UI: server-rendered pages and the small JSON endpoints their scripts call.

Pages render the first page of captures into the HTML, so the list shows without waiting for a
script round trip; everything after that (older pages, details, live deltas) is fetched on demand.
State-changing endpoints are POSTs behind Django's CSRF check (the page sends the token in a header);
plain replay and clear go to the agent API, which accepts only JSON bodies (no cross-site forms).
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from agentapi.captures.content_views import Body, sniff_image
from agentapi.captures.message_body import parse_message
from agentapi.models import Capture
from agentapi.runtime import NotAnHttpTunnel, ReplayRefused, TunnelNotRunning, current_runtime

from .capture_detail import capture_detail
from .capture_filters import ANSWERING_ACTIONS, parse_filters
from .capture_list import PAGE_SIZE, capture_page
from .exporters import curl_command, har_log
from .replay_request import ReplayRequestError, build_request, parse_edit, seed
from .tunnel_status import tunnels_for_page

HAR_DEFAULT_LIMIT = 1000
HAR_MAX_LIMIT = 10000
SIDES = ("request", "response")


def _no_sniff(response: HttpResponse) -> HttpResponse:
    # Captured bytes are someone else's content: never let the browser run or sniff them here.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
    return response


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


# --- pages ---------------------------------------------------------------------------------
@require_GET
def inspector(request: HttpRequest) -> HttpResponse:
    filters = parse_filters(request.GET)
    page = capture_page(filters, limit=PAGE_SIZE)
    tunnels = tunnels_for_page()
    boot = {
        "page": page.as_json(),
        "filters": filters.given,
        "filter_query": filters.query_string(),
        "filters_active": filters.active,
        "tunnels": [{k: t[k] for k in ("name", "public_url", "proto", "addr")} for t in tunnels],
        "urls": {
            "captures": reverse("inspector-captures"),
            "export_har": reverse("inspector-export-har"),
            "replay": reverse("inspector-replay"),
            "api_requests": "/api/requests/http",
            "socket": "/ws/inspector",
        },
    }
    context = {
        "boot": boot,
        "filters": filters,
        "tunnels": tunnels,
        "methods": ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"),
        "policy_actions": ANSWERING_ACTIONS,
        "active_page": "inspect",
    }
    return render(request, "dashboard/inspector.html", context)


@require_GET
def status(request: HttpRequest) -> HttpResponse:
    tunnels = tunnels_for_page()
    context = {
        "tunnels": tunnels,
        "boot": {"tunnels": tunnels, "urls": {"socket": "/ws/inspector"}},
        "agent_version": settings.AGENT_VERSION,
        "active_page": "status",
    }
    return render(request, "dashboard/status.html", context)


# --- list and detail -----------------------------------------------------------------------
@require_GET
def captures_json(request: HttpRequest) -> JsonResponse:
    filters = parse_filters(request.GET)
    ids = [i for i in request.GET.get("ids", "").split(",") if i] or None
    page = capture_page(
        filters, before=request.GET.get("before") or None, limit=_int(request.GET.get("limit"), PAGE_SIZE), ids=ids
    )
    return JsonResponse({**page.as_json(), "filter_errors": filters.errors})


@require_GET
def capture_json(request: HttpRequest, capture_id: str) -> JsonResponse:
    capture = get_object_or_404(Capture, id=capture_id)
    return JsonResponse(capture_detail(capture))


def _message_bytes(capture: Capture, side: str) -> bytes | None:
    if side == "request":
        return bytes(capture.request_raw)
    return bytes(capture.response_raw) if capture.response_raw is not None else None


@require_GET
def capture_raw(request: HttpRequest, capture_id: str, side: str) -> HttpResponse:
    capture = get_object_or_404(Capture, id=capture_id)
    data = _message_bytes(capture, side)
    if data is None:
        return _error(404, "this capture has no response yet")
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{capture.id}-{side}.http"'
    return _no_sniff(response)


@require_GET
def capture_body(request: HttpRequest, capture_id: str, side: str) -> HttpResponse:
    """The decoded body: images inline (for the detail view), anything else as a download."""
    capture = get_object_or_404(Capture, id=capture_id)
    data = _message_bytes(capture, side)
    if data is None:
        return _error(404, "this capture has no response yet")
    message = parse_message(data, response=side == "response")
    image = sniff_image(Body(message.decoded_body, message.content_type))
    response = HttpResponse(message.decoded_body, content_type=image or "application/octet-stream")
    if not image or "download" in request.GET:
        response["Content-Disposition"] = f'attachment; filename="{capture.id}-{side}-body"'
    return _no_sniff(response)


# --- exports -------------------------------------------------------------------------------
@require_GET
def capture_curl(request: HttpRequest, capture_id: str) -> HttpResponse:
    capture = get_object_or_404(Capture, id=capture_id)
    return HttpResponse(curl_command(capture) + "\n", content_type="text/plain; charset=utf-8")


def _har_response(captures: list[Capture], filename: str) -> HttpResponse:
    body = json.dumps(har_log(captures), ensure_ascii=False, indent=1)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
def capture_har(request: HttpRequest, capture_id: str) -> HttpResponse:
    capture = get_object_or_404(Capture, id=capture_id)
    return _har_response([capture], f"{capture.id}.har")


@require_GET
def export_har(request: HttpRequest) -> HttpResponse:
    """The filtered list as HAR, newest `limit` captures (oldest first in the file)."""
    filters = parse_filters(request.GET)
    limit = max(1, min(_int(request.GET.get("limit"), HAR_DEFAULT_LIMIT), HAR_MAX_LIMIT))
    ids: list[str] = []
    before: str | None = None
    while len(ids) < limit:
        page = capture_page(filters, before=before, limit=min(500, limit - len(ids)))
        ids += [summary["id"] for summary in page.captures]
        if page.next_before is None:
            break
        before = page.next_before
    captures: list[Capture] = []
    for start in range(0, len(ids), 200):
        captures += Capture.objects.filter(id__in=ids[start : start + 200])
    captures.sort(key=lambda capture: capture.id)
    return _har_response(captures, "captures.har")


# --- replay with modifications ---------------------------------------------------------------
@require_GET
def replay_seed(request: HttpRequest, capture_id: str) -> JsonResponse:
    capture = get_object_or_404(Capture, id=capture_id)
    tunnels = [t["name"] for t in tunnels_for_page() if t["proto"] in ("http", "https")]
    return JsonResponse({**seed(capture), "tunnels": tunnels})


@require_POST
def replay(request: HttpRequest) -> JsonResponse:
    """Send an edited request to a tunnel's local service (with `through_policy`, through its
    Traffic Policy first); answers once the new capture is stored."""
    try:
        data: Any = json.loads(request.body or b"{}")
        edit = parse_edit(data)
    except json.JSONDecodeError:
        return _error(400, "a JSON body is expected")
    except ReplayRequestError as error:
        return _error(400, str(error))
    # Through the tunnel's Traffic Policy first (default: bypassed, as ngrok's inspector does).
    through_policy = data.get("through_policy", False)
    if not isinstance(through_policy, bool):
        return _error(400, "through_policy must be true or false")
    runtime = current_runtime()
    if runtime is None:
        return _error(503, "no tunnel engine runs in this process")
    tunnel_name = str(data.get("tunnel_name") or "")
    replay_of = str(data.get("id") or "")
    if not tunnel_name and replay_of:
        original = Capture.objects.filter(id=replay_of).only("tunnel_name").first()
        tunnel_name = original.tunnel_name if original is not None else ""
    tunnel = async_to_sync(runtime.tunnel)(tunnel_name)
    if tunnel is None or not tunnel.replays_requests:
        return _error(404, f"no HTTP tunnel named {tunnel_name!r} is running")
    # The Host the service expects unless the edit says otherwise.
    raw = build_request(edit, default_host=tunnel.upstream_host)
    try:
        replayed = async_to_sync(runtime.replay)(raw, tunnel_name, replay_of=replay_of, through_policy=through_policy)
    except (TunnelNotRunning, NotAnHttpTunnel):  # it stopped (or changed) since it was looked up
        return _error(404, f"the tunnel {tunnel_name!r} stopped")
    except ReplayRefused as error:  # e.g. a Content-Length the edited body does not match
        return _error(400, str(error))
    return JsonResponse({"id": replayed.id, "status_code": replayed.status_code}, status=201)
