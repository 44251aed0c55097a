"""The filtered capture set as an export reads it: every capture the list shows for the same filters,
oldest first, read in keyset batches, never all at once and never capped.

Rules:
- The set is the list's: the same `CaptureFilter` (capture_filters.py): its SQL narrowing, then its
  exact check on the bytes for header and body filters. No limit, no "newest N": an export that
  cannot hold everything would have to say so, and this one does not need to.
- The set is fixed when the export starts: the newest id at that moment is the last one read, so
  an export of a busy tunnel ends. A capture evicted while the export runs is missing from it.
- Ids come in pages of `ID_PAGE` by `id > last` on the primary key index (with their
  `stored_size`, so no bytes are read for them); whole rows are then read in groups of at most
  `GROUP_BYTES` stored bytes (at least one row). Memory is bounded by one page of ids and one
  group of rows whatever the size of the store.
- Under ASGI the response must be an async iterator, or Django collects every chunk before
  sending (django.http.StreamingHttpResponse.__aiter__). `in_worker_thread` steps a sync chunk
  iterator in Django's thread for the request (`sync_to_async`), one block of about `BLOCK_CHARS`
  characters at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator

from asgiref.sync import sync_to_async

from agentapi.models import Capture

from .capture_filters import CaptureFilter

ID_PAGE = 500
GROUP_BYTES = 4 * 1024 * 1024
BLOCK_CHARS = 64 * 1024


def filtered_captures(filters: CaptureFilter) -> Iterator[Capture]:
    """Every capture matching `filters` that exists now, oldest first, whole rows (bytes included).

    Lazy: nothing is read before the first capture is asked for, and then one page at a time.
    """
    id_page, group_bytes = ID_PAGE, GROUP_BYTES  # read per call, so tests can make them small
    newest = Capture.objects.order_by("-id").values_list("id", flat=True).first()
    if newest is None:
        return
    narrowed = filters.apply(Capture.objects.filter(id__lte=newest)).order_by("id")
    after: str | None = None
    while True:
        page_query = narrowed.filter(id__gt=after) if after is not None else narrowed
        page = list(page_query.values_list("id", "stored_size")[:id_page])
        if not page:
            return
        after = page[-1][0]
        for group in _groups(page, group_bytes):
            for capture in Capture.objects.filter(id__in=group).order_by("id"):
                if not filters.needs_bytes or filters.matches_bytes(capture):
                    yield capture
        if len(page) < id_page:
            return


def _groups(page: list[tuple[str, int]], group_bytes: int) -> Iterator[list[str]]:
    """Ids in order, cut into groups of at most `group_bytes` stored bytes (a bigger row alone)."""
    group: list[str] = []
    size = 0
    for capture_id, stored in page:
        if group and size + stored > group_bytes:
            yield group
            group, size = [], 0
        group.append(capture_id)
        size += stored
    if group:
        yield group


def blocks(chunks: Iterable[str]) -> Iterator[str]:
    """Small chunks joined into blocks of about BLOCK_CHARS characters (fewer writes and thread hops)."""
    size = BLOCK_CHARS
    buffer: list[str] = []
    length = 0
    for chunk in chunks:
        buffer.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer)


async def in_worker_thread(chunks: Iterator[str]) -> AsyncIterator[str]:
    """A sync chunk iterator (which reads the database) stepped in Django's request thread."""
    step = sync_to_async(_next_or_none, thread_sensitive=True)
    while (chunk := await step(chunks)) is not None:
        yield chunk


def _next_or_none(chunks: Iterator[str]) -> str | None:
    return next(chunks, None)
