"""The inspector UI: server-rendered pages and the small JSON endpoints their scripts call.

Pages render the first page of captures into the HTML, so the list shows without waiting for a
script round trip; everything after that (older pages, details, live deltas) is fetched on demand.
State-changing endpoints (replay, delete one, clear) are POSTs or DELETEs behind Django's CSRF check
(the page sends the token in a header). Deleting captures tells every open inspector over the
channel layer (the `captures.stored` event with `evicted` ids, as the store's eviction does), and
lets the capture store re-read its running total. "Clear" with filters deletes only what the
filters match, and refuses filters with errors: a dropped filter would clear more than was shown.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agentapi.capture_erasure import erase, erase_ids
from agentapi.captures.content_views import Body, sniff_image
from agentapi.captures.message_body import parse_message
from agentapi.captures.multipart import parse_parts
from agentapi.captures.summary import SUMMARY_FIELDS, summary
from agentapi.models import Capture
from agentapi.runtime import CAPTURES_GROUP, NotAnHttpTunnel, ReplayRefused, TunnelNotRunning, current_runtime

from .capture_detail import capture_detail
from .capture_filters import ANSWERING_ACTIONS, parse_filters
from .capture_list import PAGE_SIZE, ListError, capture_page, count_matching, matching_ids, parse_sort
from .exporters import curl_command, har_log
from .replay_request import ReplayRequestError, build_request, parse_edit, seed
from .tunnel_status import status_page_boot, tunnels_for_page
from .webhook_resign import resigned

SIDES = ("request", "response")
# The filtered count "Clear N filtered" names: counted up to this, "N+" past it.
CLEAR_COUNT_CAP = 10000


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
    try:
        sort = parse_sort(request.GET.get("sort"))
    except ListError as error:
        filters.errors.append(str(error))
        sort = parse_sort("")
    page = capture_page(filters, limit=PAGE_SIZE, sort=sort)
    tunnels = tunnels_for_page()
    boot = {
        "page": page.as_json(),
        "filters": filters.given,
        "filter_query": filters.query_string(),
        "filters_active": filters.active,
        "filter_errors": filters.errors,
        "search": filters.search_report(page.next_before),
        "sort": sort.as_param(),
        "tunnels": [{k: t[k] for k in ("name", "public_url", "proto", "addr")} for t in tunnels],
        "urls": {
            "captures": reverse("inspector-captures"),
            "export_har": reverse("inspector-export-har"),
            "replay": reverse("inspector-replay"),
            "clear": reverse("inspector-clear"),
            "count": reverse("inspector-count"),
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
        "status_extras": status_page_boot(),
        "agent_version": settings.AGENT_VERSION,
        "active_page": "status",
    }
    return render(request, "dashboard/status.html", context)


# --- list and detail -----------------------------------------------------------------------
@require_GET
def captures_json(request: HttpRequest) -> JsonResponse:
    """A page of summaries: the filters, `sort`, `before` (the previous page's `next_before`),
    `limit`, `ids` (only these) and `at` (epoch seconds: start the newest-first list there)."""
    filters = parse_filters(request.GET)
    ids = [i for i in request.GET.get("ids", "").split(",") if i] or None
    try:
        at = float(request.GET["at"]) if request.GET.get("at") else None
        page = capture_page(
            filters,
            before=request.GET.get("before") or None,
            limit=_int(request.GET.get("limit"), PAGE_SIZE),
            ids=ids,
            sort=parse_sort(request.GET.get("sort")),
            at=at,
        )
    except ValueError as error:  # ListError, or an `at` that is not a number
        return _error(400, str(error) if isinstance(error, ListError) else f"at: {error}")
    return JsonResponse(
        {**page.as_json(), "filter_errors": filters.errors, "search": filters.search_report(page.next_before)}
    )


@require_GET
def captures_count(request: HttpRequest) -> JsonResponse:
    """How many captures the filters match, for the Clear button: {"count", "exact", "filtered"}.
    Counted up to CLEAR_COUNT_CAP (exact false past it); never a whole-table count."""
    filters = parse_filters(request.GET)
    if not filters.active:
        return JsonResponse({"count": None, "exact": False, "filtered": False, "filter_errors": filters.errors})
    count, exact = count_matching(filters, cap=CLEAR_COUNT_CAP)
    return JsonResponse({"count": count, "exact": exact, "filtered": True, "filter_errors": filters.errors})


@require_GET
def capture_json(request: HttpRequest, capture_id: str) -> JsonResponse:
    capture = get_object_or_404(Capture, id=capture_id)
    return JsonResponse(capture_detail(capture))


# --- delete and clear ----------------------------------------------------------------------
def _announce_deleted(ids: list[str]) -> None:
    """Tell every open inspector (the consumer's `captures.evicted`) and the capture store."""
    runtime = current_runtime()
    if runtime is not None:
        runtime.forget_stored_total()
    layer = get_channel_layer()
    if layer is None or not ids:
        return
    for start in range(0, len(ids), 500):
        async_to_sync(layer.group_send)(
            CAPTURES_GROUP, {"type": "captures.stored", "evicted": ids[start : start + 500]}
        )


def _flush_captures() -> None:
    # Captures still queued in the sink are stored first, so a delete sees them.
    runtime = current_runtime()
    if runtime is not None:
        async_to_sync(runtime.flush_captures)()


@require_http_methods(["DELETE"])
def capture_delete(request: HttpRequest, capture_id: str) -> HttpResponse:
    """Delete one capture: 204, or 404 when it is not stored."""
    _flush_captures()
    if not erase(Capture.objects.filter(id=capture_id)):
        return _error(404, f"no capture {capture_id!r} is stored")
    _announce_deleted([capture_id])
    return HttpResponse(status=204)


@require_POST
def captures_clear(request: HttpRequest) -> JsonResponse:
    """Delete the captures the query string's filters match (all of them without filters):
    {"deleted": N (null for all), "filtered": bool}. 400 when a filter has an error."""
    filters = parse_filters(request.GET)
    if filters.errors:
        return _error(400, "not cleared, a filter has an error: " + "; ".join(filters.errors))
    runtime = current_runtime()
    if not filters.active:
        if runtime is not None:
            async_to_sync(runtime.clear_captures)()
        else:
            erase(Capture.objects.all())
        return JsonResponse({"deleted": None, "filtered": False})
    _flush_captures()
    deleted: list[str] = []
    # Collected first, then deleted: deleting while walking would move the walk's cursor.
    for batch in matching_ids(filters):
        deleted += batch
    erase_ids(deleted)
    _announce_deleted(deleted)
    return JsonResponse({"deleted": len(deleted), "filtered": True})


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


@require_GET
def capture_part(request: HttpRequest, capture_id: str, side: str, index: str) -> HttpResponse:
    """Part `index` (from 0) of a multipart/form-data body, decoded, as a download named after it."""
    capture = get_object_or_404(Capture, id=capture_id)
    data = _message_bytes(capture, side)
    if data is None:
        return _error(404, "this capture has no response yet")
    message = parse_message(data, response=side == "response")
    parts = parse_parts(message.decoded_body, message.content_type)
    if int(index) >= len(parts):
        return _error(404, f"the {side} body has {len(parts)} multipart part(s); there is no part {index}")
    part = parts[int(index)]
    body = message.decoded_body[part.start : part.end]
    response = HttpResponse(body, content_type="application/octet-stream")
    name = part.filename or f"{capture.id}-{side}-part{index}"
    response["Content-Disposition"] = content_disposition_header(True, name) or "attachment"
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


# --- replay ----------------------------------------------------------------------------------
@require_POST
def capture_replay(request: HttpRequest, capture_id: str) -> JsonResponse:
    """Replay a stored capture as the API does (bypassing the Traffic Policy unless the JSON body
    says `"through_policy": true`); 201 with the new capture: {"id", "status_code", "replay_of",
    "capture": summary}, so the page can name and select it."""
    try:
        data: Any = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        return _error(400, "a JSON body is expected")
    through_policy = data.get("through_policy", False) if isinstance(data, dict) else None
    if not isinstance(through_policy, bool):
        return _error(400, "through_policy must be true or false")
    runtime = current_runtime()
    if runtime is None:
        return _error(503, "no tunnel engine runs in this process")
    capture = get_object_or_404(Capture, id=capture_id)
    try:
        replayed = async_to_sync(runtime.replay)(capture, through_policy=through_policy)
    except (TunnelNotRunning, NotAnHttpTunnel):
        return _error(404, f"no HTTP tunnel named {capture.tunnel_name!r} is running")
    except ReplayRefused as error:  # cut at the capture limit, or the request did not cross whole
        return _error(400, str(error))
    stored = Capture.objects.filter(id=replayed.id).only(*SUMMARY_FIELDS).first()
    return JsonResponse(
        {
            "id": replayed.id,
            "status_code": replayed.status_code,
            "replay_of": capture.id,
            "capture": summary(stored) if stored is not None else None,
        },
        status=201,
    )


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
        edit = resigned(parse_edit(data), data.get("resign"))  # replay with re-signing
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
