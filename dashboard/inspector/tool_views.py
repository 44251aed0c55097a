"""The inspector's tools for webhook work, as pages and JSON endpoints: the list's streamed HAR
export, copy as fetch / HTTPie / requests, the diff of two captures, replay with re-signing, HAR
import and the storage line.

Kept apart from views.py (the list, the detail, replay and clear) so each stays readable. The same
rules hold: GETs read, state changes are POSTs behind Django's CSRF check, errors are
`{"error": message}` with a status that says whose fault it was.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from agentapi.captures.message_body import parse_message
from agentapi.captures.summary import SUMMARY_FIELDS, summary
from agentapi.models import Capture
from agentapi.runtime import CAPTURES_GROUP, current_runtime

from .capture_diff import capture_diff
from .capture_filters import parse_filters
from .copy_as import FORMATS
from .export_stream import blocks, filtered_captures, in_worker_thread
from .exporters import har_chunks
from .har_import import MAX_BYTES, HarImportError, import_har, megabytes
from .replay_request import seed
from .storage_use import storage_use
from .tunnel_status import tunnels_for_page
from .webhook_resign import SCHEMES, guess_provider


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


# --- exports ---------------------------------------------------------------------------------
@require_GET
def export_har(request: HttpRequest) -> HttpResponseBase:
    """Every capture of the filtered list as HAR 1.2, oldest first, streamed (export_stream.py).

    The filters are the list's query string; `log.comment` says how many captures the file holds
    and which, including any filter the list could not read (shown there, not applied)."""
    filters = parse_filters(request.GET)
    selection = f"every capture matching {filters.query_string()}" if filters.active else "every stored capture"
    if filters.errors:
        selection += " (not applied: " + "; ".join(filters.errors) + ")"
    chunks = blocks(har_chunks(filtered_captures(filters), selection=selection))
    streamed = in_worker_thread(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(streamed, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="captures.har"'
    return response


@require_GET
def copy_as(request: HttpRequest, capture_id: str, language: str) -> HttpResponse:
    """The request as `fetch`, `httpie` or `requests` code (copy_as.py), as text/plain."""
    make = FORMATS.get(language)
    if make is None:
        return _error(404, f"no export {language!r}: use {', '.join(FORMATS)}")
    capture = get_object_or_404(Capture, id=capture_id)
    return HttpResponse(make(capture) + "\n", content_type="text/plain; charset=utf-8")


# --- replay with re-signing ------------------------------------------------------------------
@require_GET
def resign_seed(request: HttpRequest, capture_id: str) -> JsonResponse:
    """What the re-signing dialog starts from: the replay editor's seed, the provider whose
    signature header the request carries ("" when none), the providers it can sign for
    ({name: label}) and the HTTP tunnels. The re-signed request is sent by POST /inspect/replay
    with `"resign": {"provider", "secret"}`."""
    capture = get_object_or_404(Capture, id=capture_id)
    message = parse_message(bytes(capture.request_raw), response=False)
    return JsonResponse(
        {
            **seed(capture),
            "provider": guess_provider(message.headers),
            "providers": {name: scheme.label for name, scheme in SCHEMES.items()},
            "tunnels": [t["name"] for t in tunnels_for_page() if t["proto"] in ("http", "https")],
        }
    )


# --- diff ------------------------------------------------------------------------------------
def _diff_pair(request: HttpRequest) -> tuple[Capture, Capture] | JsonResponse:
    """Captures `a` and `b` of the query string; `b` alone, when it is a replay, with its original."""
    b_id = request.GET.get("b", "").strip()
    a_id = request.GET.get("a", "").strip()
    if not b_id:
        return _error(400, "b is needed: /inspect/diff?a=<id>&b=<id>, or b=<a replay's id> alone")
    b = Capture.objects.filter(id=b_id).first()
    if b is None:
        return _error(404, f"no capture {b_id!r} is stored")
    if not a_id:
        if not b.replay_of:
            return _error(400, f"{b_id} is not a replay: name the capture to compare it with as a")
        a_id = b.replay_of
    a = Capture.objects.filter(id=a_id).first()
    if a is None:
        return _error(404, f"no capture {a_id!r} is stored")
    return a, b


@require_GET
def diff_json(request: HttpRequest) -> JsonResponse:
    """`?a=ID&b=ID` (or `?b=REPLAY_ID`): capture_diff.capture_diff of the two, as JSON."""
    pair = _diff_pair(request)
    if isinstance(pair, JsonResponse):
        return pair
    return JsonResponse(capture_diff(*pair))


@require_GET
def diff_page(request: HttpRequest) -> HttpResponse:
    """The diff page: the same query as diff_json, the diff drawn by diff_view.js (or the error)."""
    pair = _diff_pair(request)
    boot: dict[str, Any] = {"a": request.GET.get("a", ""), "b": request.GET.get("b", "")}
    if isinstance(pair, JsonResponse):
        boot["error"] = json.loads(pair.content)["error"]
        status = pair.status_code
    else:
        boot["diff"] = capture_diff(*pair)
        status = 200
    return render(request, "dashboard/diff.html", {"boot": boot, "active_page": "inspect"}, status=status)


# --- HAR import ------------------------------------------------------------------------------
_ANNOUNCE_BATCH = 200


@require_POST
def import_har_file(request: HttpRequest) -> JsonResponse:
    """Store a HAR 1.2 file's entries as captures (har_import.py): a multipart upload, field `har`.

    201 {"imported": N, "tunnel_name", "ids": [oldest, ..., newest], "list_url"}; 413 for a file
    past har_import.MAX_BYTES (refused from its Content-Length, before it is read); 400 naming the
    entry and field for a file that is not a HAR or has a bad entry."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_BYTES + 64 * 1024:  # the form's own bytes on top of the file
        return _error(413, f"the upload is {megabytes(length)}; a HAR import takes at most {megabytes(MAX_BYTES)}")
    upload = request.FILES.get("har")
    if upload is None:
        return _error(400, "no file: send the HAR file as the form field har")
    if upload.size is not None and upload.size > MAX_BYTES:
        return _error(413, f"the file is {megabytes(upload.size)}; a HAR import takes at most {megabytes(MAX_BYTES)}")
    try:
        imported = import_har(upload.read(), upload.name or "", now=time.time)
    except HarImportError as error:
        return _error(400, str(error))
    runtime = current_runtime()
    if runtime is not None:
        runtime.forget_stored_total()  # the capture store's running total did not see these rows
    _announce_created(imported.ids)
    list_url = reverse("inspector-http") + "?" + urlencode({"tunnel": imported.tunnel_name})
    return JsonResponse(
        {"imported": len(imported.ids), "tunnel_name": imported.tunnel_name, "ids": imported.ids, "list_url": list_url},
        status=201,
    )


def _announce_created(ids: list[str]) -> None:
    """Open inspectors show the new rows as they show live ones (the consumer's capture.created)."""
    layer = get_channel_layer()
    if layer is None:
        return
    for start in range(0, len(ids), _ANNOUNCE_BATCH):
        rows = Capture.objects.filter(id__in=ids[start : start + _ANNOUNCE_BATCH]).only(*SUMMARY_FIELDS).order_by("id")
        async_to_sync(layer.group_send)(
            CAPTURES_GROUP, {"type": "captures.stored", "created": [summary(c) for c in rows]}
        )


# --- storage ---------------------------------------------------------------------------------
@require_GET
def storage_json(request: HttpRequest) -> JsonResponse:
    """The storage line (storage_use.py): {"captures", "stored_bytes", "budget", "exact", "line"}."""
    return JsonResponse(storage_use().as_json())
