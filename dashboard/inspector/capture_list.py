"""Pages of capture summaries for the inspector's list, newest first, by keyset (`before` an id).

Summaries (agentapi.captures.summary) carry metadata only (no bytes) and have the shape the capture
sink announces on the channel layer, so rows drawn from a page and rows pushed live are the same.
Ids sort by time, so `id < before` is the next page and the primary key index serves it: no OFFSET,
no COUNT(*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentapi.captures.summary import SUMMARY_FIELDS, summary
from agentapi.models import Capture

from .capture_filters import CaptureFilter

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
# Rows whose bytes one request may check for header/body filters before answering with a cursor.
SCAN_LIMIT = 2000
_SCAN_BATCH = 200


@dataclass
class Page:
    captures: list[dict[str, Any]]
    # Where the next (older) page starts, or None at the end.
    next_before: str | None

    def as_json(self) -> dict[str, Any]:
        return {"captures": self.captures, "next_before": self.next_before}


def capture_page(
    filters: CaptureFilter, *, before: str | None = None, limit: int = PAGE_SIZE, ids: list[str] | None = None
) -> Page:
    captures = filters.apply(Capture.objects.order_by("-id"))
    if before:
        captures = captures.filter(id__lt=before)
    if ids is not None:
        captures = captures.filter(id__in=ids)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    if not filters.needs_bytes:
        rows = list(captures.only(*SUMMARY_FIELDS)[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([summary(row) for row in rows], rows[-1].id if more and rows else None)
    # Header and body filters: check the narrowed rows on their bytes, a bounded number per request.
    found: list[Capture] = []
    scanned = 0
    cursor = before
    while scanned < SCAN_LIMIT:
        batch_query = captures.filter(id__lt=cursor) if cursor else captures
        batch = list(batch_query.only(*SUMMARY_FIELDS, "request_raw", "response_raw")[:_SCAN_BATCH])
        for capture in batch:
            scanned += 1
            cursor = capture.id
            if filters.matches_bytes(capture):
                found.append(capture)
                if len(found) == limit:
                    return Page([summary(c) for c in found], capture.id)
        if len(batch) < _SCAN_BATCH:
            return Page([summary(c) for c in found], None)
    return Page([summary(c) for c in found], cursor)
