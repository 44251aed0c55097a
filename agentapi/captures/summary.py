"""The summary of a capture: its metadata only (no bytes), the one shape every list shows.

The inspector's list pages, the head of its detail and the live deltas all carry this shape, so a
row drawn from a page and a row pushed live are the same. The live deltas are built by the capture
sink (`agentapi.engine.capture_sink._summary`, from the rows it has just written; the engine imports
nothing of Django, so it cannot call this) with the same keys and values except `replay_of`, which
only the stored row has. tests/unit/test_capture_summary.py holds the two together.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from django.db.models import QuerySet

from agentapi.models import Capture

# The columns a summary reads: `.only(*SUMMARY_FIELDS)` keeps the stored bytes out of a list query.
SUMMARY_FIELDS = (
    "id",
    "tunnel_name",
    "remote_addr",
    "start",
    "duration_ns",
    "method",
    "uri",
    "status_code",
    "request_size",
    "response_size",
    "replay_of",
    "stored_size",
    "request_complete",
    "response_complete",
    "incomplete_reason",
    "policy_action",
)


class SummaryFields(Protocol):
    """What a summary reads: a Capture, or a row of `summary_rows` (the same names, no model)."""

    @property
    def id(self) -> str: ...
    @property
    def tunnel_name(self) -> str: ...
    @property
    def remote_addr(self) -> str: ...
    @property
    def start(self) -> dt.datetime: ...
    @property
    def duration_ns(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def status_code(self) -> int | None: ...
    @property
    def request_size(self) -> int: ...
    @property
    def response_size(self) -> int | None: ...
    @property
    def replay_of(self) -> str: ...
    @property
    def stored_size(self) -> int: ...
    @property
    def request_complete(self) -> bool: ...
    @property
    def response_complete(self) -> bool: ...
    @property
    def incomplete_reason(self) -> str: ...
    @property
    def policy_action(self) -> str: ...


def summary_rows(captures: QuerySet[Capture]) -> list[SummaryFields]:
    """The SUMMARY_FIELDS of the captures as named tuples, not model instances: a list page
    reads 100 rows, and building a Capture for each cost more than the query (issue 11)."""
    return list(captures.values_list(*SUMMARY_FIELDS, named=True))


def summary(capture: SummaryFields) -> dict[str, Any]:
    """The summary of a capture (a Capture, or a row of `summary_rows`)."""
    return {
        "id": capture.id,
        "tunnel_name": capture.tunnel_name,
        "start": capture.start.timestamp(),
        "duration_ns": capture.duration_ns,
        "method": capture.method,
        "uri": capture.uri,
        "status_code": capture.status_code,
        "request_size": capture.request_size,
        "response_size": capture.response_size,
        "remote_addr": capture.remote_addr,
        "replay_of": capture.replay_of,
        # Capture truth, for the row's marker: a side that did not cross whole, and why; bytes
        # that crossed but were not kept (stored_size is the kept bytes of both sides).
        "request_complete": capture.request_complete,
        "response_complete": capture.response_complete,
        "incomplete_reason": capture.incomplete_reason,
        # The Traffic Policy action that answered instead of the service ("" when the service
        # did): the list's "blocked by policy" mark. The steps themselves are in the detail.
        "policy_action": capture.policy_action,
        "truncated": capture.stored_size < capture.request_size + (capture.response_size or 0),
    }
