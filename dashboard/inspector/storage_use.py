"""The storage line: how many captures are stored and how many bytes they hold, against the budget
they are kept within ("1,234 captures, 12.3 MB of 50 MB"), without a whole-table count per page.

Rules (the capture store's way, agentapi/capture_store.py: read the total once, then keep it):
- The first read, a read after rows left the old end (eviction, clear: the oldest id changed) and
  a read more than RECOUNT_SECONDS after the last full count do one full count (COUNT and
  SUM(stored_size) in one query). A full count after rows left is done at most once per
  MIN_RECOUNT_SECONDS: while eviction runs continuously the line may count evicted rows for that
  long, so it says "about" (`exact` false) until the next full count.
- Any other read adds only the rows stored since the last one (`id > newest counted`: a range of
  the primary key index) to the running total.
- A capture deleted from the middle (delete one) is seen at the next full count.
- The clock is injected (`now`), the totals are process-wide and guarded by a lock (Django serves
  pages from several threads).
- The budget is the running agent's (its config file's `inspect_db_size` or AGENT_INSPECT_DB_SIZE);
  without an agent in this process, AGENT_INSPECT_DB_SIZE.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Sum

from agentapi.engine.capture_sink import PRESSURE_CAPTURE_LIMIT
from agentapi.models import Capture
from agentapi.runtime import current_runtime

RECOUNT_SECONDS = 300.0
MIN_RECOUNT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class StorageUse:
    captures: int
    stored_bytes: int
    budget: int | None  # bytes; 0 or less: no bound; None: this agent stores no captures
    exact: bool  # False while rows may have left since the last full count
    # Captures not kept since the agent started: the database was not keeping up (the requests
    # were forwarded; only their captures are missing from the list).
    dropped: int = 0
    # Captures kept in part: each message cut to PRESSURE_CAPTURE_LIMIT bytes while the database
    # was behind (marked cut, as the capture limit's cuts are).
    cut: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "captures": self.captures,
            "stored_bytes": self.stored_bytes,
            "budget": self.budget,
            "exact": self.exact,
            "dropped": self.dropped,
            "cut": self.cut,
            "line": storage_line(self),
        }


def storage_line(use: StorageUse) -> str:
    """'1,234 captures, 12.3 MB of 50 MB' (MB: 1,000,000 bytes, as AGENT_INSPECT_DB_SIZE counts),
    then '; 56 not kept, 7 cut to 64 KiB a message: the database could not keep up' when captures
    were dropped or cut under pressure (either part alone when only one happened)."""
    about = "" if use.exact else "about "
    noun = "capture" if use.captures == 1 else "captures"
    line = f"{about}{use.captures:,} {noun}, {_mb(use.stored_bytes)}"
    if use.budget is None:
        line += " (this agent stores no new captures)"
    elif use.budget <= 0:
        line += " (no size limit)"
    else:
        line += f" of {_mb(use.budget)}"
    shortfall = []
    if use.dropped:
        shortfall.append(f"{use.dropped:,} not kept")
    if use.cut:
        shortfall.append(f"{use.cut:,} cut to {PRESSURE_CAPTURE_LIMIT // 1024} KiB a message")
    if shortfall:
        line += f"; {', '.join(shortfall)}: the database could not keep up"
    return line


def _mb(size: int) -> str:
    megabytes = size / 1_000_000
    if 0 < megabytes < 0.1:
        return "< 0.1 MB"
    if megabytes >= 10 or megabytes == int(megabytes):
        return f"{megabytes:,.0f} MB"
    return f"{megabytes:.1f} MB"


class StorageTally:
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._counted_at: float | None = None
        self._oldest: str | None = None
        self._newest: str | None = None
        self._captures = 0
        self._bytes = 0
        self._exact = False

    def read(self) -> tuple[int, int, bool]:
        """(captures, stored bytes, exact), by the rules of the module."""
        with self._lock:
            now = self._now()
            # Two queries, not one MIN and MAX: SQLite answers a lone min() or max() from the
            # index in one step, but scans the table for both together.
            ends = {
                "oldest": Capture.objects.order_by("id").values_list("id", flat=True).first(),
                "newest": Capture.objects.order_by("-id").values_list("id", flat=True).first(),
            }
            left = ends["oldest"] != self._oldest and self._counted_at is not None and self._captures > 0
            due = self._counted_at is None or now - self._counted_at >= RECOUNT_SECONDS
            # Rows left: count again, at most every MIN_RECOUNT_SECONDS (at once when none are
            # left: counting an empty table costs nothing).
            if due or (left and (ends["oldest"] is None or now - (self._counted_at or 0) >= MIN_RECOUNT_SECONDS)):
                self._recount(now)
            else:
                if left:
                    self._exact = False
                if ends["newest"] is not None and (self._newest is None or ends["newest"] > self._newest):
                    grown = Capture.objects.filter(id__gt=self._newest or "").aggregate(
                        count=Count("id"), size=Sum("stored_size"), newest=Max("id")
                    )
                    self._captures += grown["count"]
                    self._bytes += grown["size"] or 0
                    self._newest = grown["newest"] or self._newest
                    if self._oldest is None:  # the first rows after an empty count
                        self._oldest = ends["oldest"]
            return self._captures, self._bytes, self._exact

    def _recount(self, now: float) -> None:
        totals = Capture.objects.aggregate(
            count=Count("id"), size=Sum("stored_size"), oldest=Min("id"), newest=Max("id")
        )
        self._captures, self._bytes = totals["count"], totals["size"] or 0
        self._oldest, self._newest = totals["oldest"], totals["newest"]
        self._counted_at = now
        self._exact = True


_tally = StorageTally(time.monotonic)


def storage_use(tally: StorageTally | None = None) -> StorageUse:
    """The storage line's numbers now (the process-wide tally unless one is given)."""
    captures, stored, exact = (tally or _tally).read()
    runtime = current_runtime()
    budget = runtime.inspect_db_size if runtime is not None else settings.AGENT_INSPECT_DB_SIZE
    dropped = runtime.captures_dropped if runtime is not None else 0
    cut = runtime.captures_cut if runtime is not None else 0
    return StorageUse(captures=captures, stored_bytes=stored, budget=budget, exact=exact, dropped=dropped, cut=cut)
