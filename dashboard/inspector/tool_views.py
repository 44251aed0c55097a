"""The inspector's tools for webhook work, as pages and JSON endpoints: the list's streamed HAR
export, copy as fetch / HTTPie / requests, the diff of two captures, replay with re-signing, HAR
import and the storage line.

Kept apart from views.py (the list, the detail, replay and clear) so each stays readable. The same
rules hold: GETs read, state changes are POSTs behind Django's CSRF check, errors are
`{"error": message}` with a status that says whose fault it was.
"""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from agentapi.captures.message_body import parse_message
from agentapi.models import Capture

from .capture_filters import parse_filters
from .copy_as import FORMATS
from .export_stream import blocks, filtered_captures, in_worker_thread
from .exporters import har_chunks
from .replay_request import seed
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
