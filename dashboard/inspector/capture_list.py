"""Pages of capture summaries for the inspector's list, by keyset, and the ids a filter matches.

Rules:
- Summaries (agentapi.captures.summary) carry metadata only (no bytes) and have the shape the
  capture sink announces on the channel layer, so rows drawn from a page and rows pushed live are
  the same.
- The default order is newest first. Ids sort by time (KSUIDs that count up within a second), so
  `id < before` is the next page and the primary key index serves it: no OFFSET, no COUNT(*).
- Any listed column can be the order instead (`sort=duration`, `sort=-size`; `-` is descending):
  rows are ordered by (column, id), ties by id in the same direction, pending rows (no status or
  size yet) last in both directions, as mitmweb sorts. The cursor of such a page is `ID~vVALUE`
  (or `ID~n` in the pending rows), so a page starts exactly after the last row of the one before.
- `at` (epoch seconds) starts a newest-first list at that time: the first row is the newest
  captured at or before it (jump to a time). The id bound of the KSUID second narrows it on the
  index before `start` decides within the second.
- Header and body filters need the stored bytes: the SQL narrows the rows, Python checks a bounded
  number per request (SCAN_LIMIT) and answers with a cursor where it stopped.
- `matching_ids` walks every row a filter matches (for "clear N filtered"), in batches, by the
  same rules; `count_matching` counts them, at most `cap` (a bounded LIMIT, never COUNT(*)).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, QuerySet

from agentapi.captures.summary import SUMMARY_FIELDS, SummaryFields, summary, summary_rows
from agentapi.engine.capture_id import KSUID_EPOCH
from agentapi.models import Capture

from .capture_filters import CaptureFilter

PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
# Rows whose bytes one request may check for header/body filters before answering with a cursor.
SCAN_LIMIT = 2000
_SCAN_BATCH = 200
# The list's sortable columns: name in the URL -> model field.
SORT_COLUMNS = {
    "time": "id",
    "tunnel": "tunnel_name",
    "method": "method",
    "path": "uri",
    "status": "status_code",
    "duration": "duration_ns",
    "size": "response_size",
}
_INT_COLUMNS = frozenset({"status_code", "duration_ns", "response_size"})
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class ListError(ValueError):
    """A sort, cursor or time the list cannot use; the message names the parameter."""


@dataclass(frozen=True)
class Sort:
    """The list's order: a column of SORT_COLUMNS and its direction."""

    column: str = "time"
    descending: bool = True

    @property
    def field(self) -> str:
        return SORT_COLUMNS[self.column]

    @property
    def by_id(self) -> bool:
        return self.field == "id"

    def as_param(self) -> str:
        """`time` ascending is `time`, descending `-time` (the default, left out of URLs)."""
        return ("-" if self.descending else "") + self.column


NEWEST_FIRST = Sort()


def parse_sort(raw: str | None) -> Sort:
    """`sort=COLUMN` ascending or `sort=-COLUMN` descending; empty: newest first.

    Raises ListError naming the columns when COLUMN is not one of them."""
    text = (raw or "").strip()
    if not text:
        return NEWEST_FIRST
    descending = text.startswith("-")
    column = text.lstrip("-")
    if column not in SORT_COLUMNS:
        raise ListError(f"sort {text!r}: use one of {', '.join(SORT_COLUMNS)}, with - for descending")
    return Sort(column, descending)


@dataclass
class Page:
    captures: list[dict[str, Any]]
    # Where the next page starts (pass it back as `before`), or None at the end.
    next_before: str | None

    def as_json(self) -> dict[str, Any]:
        return {"captures": self.captures, "next_before": self.next_before}


def capture_page(
    filters: CaptureFilter,
    *,
    before: str | None = None,
    limit: int = PAGE_SIZE,
    ids: list[str] | None = None,
    sort: Sort = NEWEST_FIRST,
    at: float | None = None,
) -> Page:
    """One page of summaries (at most `limit`, clamped to 1..MAX_PAGE_SIZE) in `sort` order.

    `before` is the previous page's `next_before`; `ids` restricts the answer to these captures
    (live rows checked against the filters); `at` (epoch seconds, newest-first order only) starts
    the list at that time. Raises ListError for a cursor of another order or `at` with a sort."""
    captures = _ordered(filters.apply(Capture.objects.all()), sort)
    if at is not None:
        if sort != NEWEST_FIRST:
            raise ListError("at: jumping to a time needs the newest-first order")
        captures = captures.filter(id__lt=_first_id_of_second(int(at) + 1), start__lte=_aware(at))
    if before:
        captures = captures.filter(_after(sort, before))
    if ids is not None:
        captures = captures.filter(id__in=ids)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    if not filters.needs_bytes:
        rows = summary_rows(captures[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([summary(row) for row in rows], _cursor(sort, rows[-1]) if more and rows else None)
    # Header and body filters: check the narrowed rows on their bytes, a bounded number per request.
    found: list[Capture] = []
    scanned = 0
    last: Capture | None = None
    while scanned < SCAN_LIMIT:
        batch_query = captures.filter(_after(sort, _cursor(sort, last))) if last is not None else captures
        batch = list(batch_query.only(*SUMMARY_FIELDS, "request_raw", "response_raw")[:_SCAN_BATCH])
        for capture in batch:
            scanned += 1
            last = capture
            if filters.matches_bytes(capture):
                found.append(capture)
                if len(found) == limit:
                    return Page([summary(c) for c in found], _cursor(sort, capture))
        if len(batch) < _SCAN_BATCH:
            return Page([summary(c) for c in found], None)
    return Page([summary(c) for c in found], _cursor(sort, last) if last is not None else None)


def matching_ids(filters: CaptureFilter, *, batch: int = 500) -> Iterator[list[str]]:
    """Every id the filters match, newest first, in lists of at most `batch`.

    The SQL part narrows by keyset on the primary key; header and body filters are checked on the
    bytes of each narrowed batch, as the list pages do. Rows stored while it walks may be left out
    (the walk goes down from the newest it saw first)."""
    captures = filters.apply(Capture.objects.order_by("-id"))
    cursor: str | None = None
    while True:
        query = captures.filter(id__lt=cursor) if cursor else captures
        if filters.needs_bytes:
            rows = list(query.only("id", "request_raw", "response_raw")[:batch])
            found = [row.id for row in rows if filters.matches_bytes(row)]
            page = [row.id for row in rows]
        else:
            page = found = list(query.values_list("id", flat=True)[:batch])
        if found:
            yield found
        if len(page) < batch:
            return
        cursor = page[-1]


def count_matching(filters: CaptureFilter, *, cap: int = 10_000) -> tuple[int, bool]:
    """How many captures the filters match: (count, exact). At most `cap` are counted (a LIMITed
    query, or for header/body filters at most `cap` narrowed rows checked on their bytes); past
    that, `exact` is False and the count is a lower bound."""
    if not filters.needs_bytes:
        found = len(filters.apply(Capture.objects.order_by("-id")).values_list("id", flat=True)[: cap + 1])
        return min(found, cap), found <= cap
    count = checked = 0
    captures = filters.apply(Capture.objects.order_by("-id"))
    cursor: str | None = None
    while True:
        query = captures.filter(id__lt=cursor) if cursor else captures
        rows = list(query.only("id", "request_raw", "response_raw")[:_SCAN_BATCH])
        for row in rows:
            if checked == cap:
                return count, False
            checked += 1
            count += filters.matches_bytes(row)
        if len(rows) < _SCAN_BATCH:
            return count, True
        cursor = rows[-1].id


# --- order and cursors ------------------------------------------------------------------------
def _ordered(captures: QuerySet[Capture], sort: Sort) -> QuerySet[Capture]:
    if sort.by_id:
        return captures.order_by("-id" if sort.descending else "id")
    column = F(sort.field)
    first = column.desc(nulls_last=True) if sort.descending else column.asc(nulls_last=True)
    return captures.order_by(first, "-id" if sort.descending else "id")


def _cursor(sort: Sort, capture: SummaryFields) -> str:
    if sort.by_id:
        return capture.id
    value = getattr(capture, sort.field)
    return f"{capture.id}~n" if value is None else f"{capture.id}~v{value}"


def _after(sort: Sort, cursor: str) -> Q:
    """The rows after `cursor` in `sort` order (ties broken by id, pending rows last)."""
    newer_id, _, value_part = cursor.partition("~")
    id_after = Q(id__lt=newer_id) if sort.descending else Q(id__gt=newer_id)
    if sort.by_id:
        if value_part:
            raise ListError("before: this cursor belongs to a list in another order")
        return id_after
    if not value_part or value_part[0] not in "nv":
        raise ListError("before: this cursor belongs to a list in another order")
    field = sort.field
    pending = Q(**{f"{field}__isnull": True})
    if value_part == "n":
        return pending & id_after
    value: Any = value_part[1:]
    if field in _INT_COLUMNS:
        try:
            value = int(value)
        except ValueError:
            raise ListError(f"before: {value!r} is not a value of {sort.column}") from None
    beyond = Q(**{f"{field}__lt" if sort.descending else f"{field}__gt": value})
    return beyond | (Q(**{field: value}) & id_after) | pending


def _aware(epoch: float) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise ListError(f"at: {epoch!r} is not a time") from None


def _first_id_of_second(epoch_second: int) -> str:
    """The smallest capture id of that second (a KSUID with an all-zero payload): every capture
    stored before that second has a smaller id."""
    number = max(epoch_second - KSUID_EPOCH, 0) << 128
    digits = []
    for _ in range(27):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "airt_" + "".join(reversed(digits))
