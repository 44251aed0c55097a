"""Searching stored captures: database narrowing (Q objects) and the exact check, for every reader.

The inspector's filters and the admin's search box both come here, so they find the same captures.
What matches is text_search's rule (what the screen shows); this module says how to find it cheaply:

- `target_q(text)`: the request target holds one of the text's target forms (`icontains`): SQL
  only, no bytes read. It is the path search: exact up to text_search's stated limits.
- `body_q(text)`: either stored message holds one of the text's body forms (the database's byte
  search, `BlobContains`), or names a Content-Encoding (its bytes cannot be searched in the
  database): candidates for `body_match`.
- `text_q(text)`: the free-text search over path, headers and body: `target_q | body_q`.
- `CaptureMatch`: the exact check of the candidates on their bytes (messages parsed once each,
  bodies decoded within AGENT_DECODED_BODY_LIMIT).
- `scan(queryset, check, limit)`: checks candidates newest first, at most `limit` of them, and says
  how far it got, so a caller can say "searched the newest N" rather than pretend it searched all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.db.models import Q, QuerySet

from agentapi.models import Capture

from .blob_search import BlobContains
from .message_body import Message, parse_message
from .text_search import body_contains, body_forms, head_contains, target_contains, target_forms

# A header line naming a content coding, as servers and clients spell it (HTTP/2 hops write lower
# case; llhttp refuses whitespace before the colon, RFC 9112 5.1).
CODED_SPELLINGS = (
    b"\r\nContent-Encoding:",
    b"\r\ncontent-encoding:",
    b"\r\nContent-encoding:",
    b"\r\nCONTENT-ENCODING:",
)
# The columns the exact check reads.
MATCH_FIELDS = ("id", "start", "request_raw", "response_raw")


def either_side_contains(data: bytes) -> Q:
    """Q: the stored request or response holds these bytes."""
    return Q(BlobContains("request_raw", data)) | Q(BlobContains("response_raw", data))


def _any(qs: Iterable[Q]) -> Q:
    return reduce(or_, qs)


def target_q(text: str) -> Q:
    """Q: the stored request target holds one of the text's spellings (any ASCII case)."""
    return _any(Q(uri__icontains=form) for form in target_forms(text))


def coded_q() -> Q:
    """Q: either message names a Content-Encoding (its body is searched only once decoded)."""
    return _any(either_side_contains(spelling) for spelling in CODED_SPELLINGS)


def body_q(text: str) -> Q:
    """Q: candidates for a body search (a superset of the matches)."""
    return _any(either_side_contains(form) for form in body_forms(text)) | coded_q()


def text_q(text: str) -> Q:
    """Q: candidates for the free-text search over path, headers and body."""
    return target_q(text) | body_q(text)


def stored_text_q(text: str) -> Q:
    """Q: exact matches the database finds alone: the decoded target, or the text's UTF-8 bytes
    as stored (request line, header fields or a body without content coding)."""
    return target_q(text) | either_side_contains(text.encode("utf-8"))


def read_body_q(text: str) -> Q:
    """Q: the rows only a reading of the body can confirm (a content coding to undo, a JSON or
    form spelling of the text): `text_q` = `stored_text_q | read_body_q` as far as matches go."""
    literal = text.encode("utf-8")
    forms = [form for form in body_forms(text) if form != literal]
    return _any([*(either_side_contains(form) for form in forms), coded_q()])


# Candidates a search box checks in Python at most (each parsed, its body decoded).
SEARCH_SCAN_LIMIT = 2000


@dataclass
class CaptureMatch:
    """The exact check of one capture: `body` (the text a shown body contains), `text` (free text
    in the decoded target, a header line or a body). Messages are parsed at most once each."""

    body: str = ""
    text: str = ""

    @property
    def active(self) -> bool:
        return bool(self.body or self.text)

    def __call__(self, capture: Capture, messages: list[Message] | None = None) -> bool:
        """Whether the capture matches; `messages` (request first), when already parsed. Reads only
        the stored bytes (the target from the request line), never another column."""
        if messages is None:
            messages = stored_messages(capture)
        if self.body and not any(body_contains(message, self.body) for message in messages):
            return False
        return not self.text or text_found(self.text, messages)


def text_found(text: str, messages: list[Message]) -> bool:
    """Free text: in the decoded target of the request (`messages[0]`), a header line or a body."""
    return target_contains(messages[0].head.target, text) or any(
        head_contains(message, text) or body_contains(message, text) for message in messages
    )


def stored_messages(capture: Capture) -> list[Message]:
    """The request, and the response when there is one, taken apart (bodies decoded)."""
    messages = [parse_message(bytes(capture.request_raw), response=False)]
    if capture.response_raw is not None:
        messages.append(parse_message(bytes(capture.response_raw), response=True))
    return messages


@dataclass
class Scan:
    """What a bounded scan found: `ids` (matching, newest first), `checked` (candidates checked),
    `oldest_checked` (the id it stopped at, None if none) and its `oldest_start`, `finished`
    (every candidate checked)."""

    ids: list[str] = field(default_factory=list)
    checked: int = 0
    oldest_checked: str | None = None
    oldest_start: dt.datetime | None = None
    finished: bool = True


def scan(candidates: QuerySet[Capture], check: Callable[[Capture], bool], *, limit: int, batch: int = 200) -> Scan:
    """Check `candidates` newest first, at most `limit` of them, `batch` rows a query (keyset by
    id, so each query is an index range). Raises nothing of its own."""
    result = Scan()
    cursor: str | None = None
    # defer(None) first: a caller's deferred bytes (the admin list defers them) would otherwise be
    # fetched one query a row.
    rows = candidates.defer(None).only(*MATCH_FIELDS).order_by("-id")
    while result.checked < limit:
        page = rows.filter(id__lt=cursor) if cursor else rows
        wanted = min(batch, limit - result.checked)
        found = list(page[:wanted])
        for capture in found:
            result.checked += 1
            cursor = result.oldest_checked = capture.id
            result.oldest_start = capture.start
            if check(capture):
                result.ids.append(capture.id)
        if len(found) < wanted:  # no older candidate
            return result
    # Stopped at the limit: finished only if nothing older is a candidate.
    result.finished = not (rows.filter(id__lt=cursor).exists() if cursor else rows.exists())
    return result
