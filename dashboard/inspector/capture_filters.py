"""The inspector's filters: read from the URL query string, ANDed, applied in the database first.

Query parameters (all optional; an empty value means "no filter"):
  q=TEXT           free text: the request target (decoded, any case), a header line `Name: value`
                   or a body (as the detail shows it) of either message contains TEXT
  path=TEXT        the request target, as shown (percent-decoded UTF-8, `+` as space), contains
                   TEXT, any case: `path=Jürgen` finds `/json?name=J%C3%BCrgen`
  method=GET,POST  one of these methods
  status=404,4xx,pending   one of these codes / classes; `pending` = no response yet
  duration_min=MS, duration_max=MS     duration in milliseconds (decimals allowed)
  size_min=N, size_max=N               response size in bytes; `k`/`m` suffixes (1024-based)
  header=NAME:VALUE  a request or response header NAME (any case) whose value contains VALUE
                     (case-sensitive; values read as UTF-8 text, as the inspector shows them);
                     `NAME` alone: the header is present; `:VALUE`: any header
  body=TEXT        the request or response body, as the detail shows it, contains TEXT (its UTF-8
                   bytes, case-sensitive): content codings undone (gzip, deflate, br, zstd,
                   stacked), JSON escapes and form encoding read (agentapi.captures.text_search)
  tunnel=NAME      captured on this tunnel
  policy=blocked   answered by the endpoint's Traffic Policy instead of the service (its trace has
                   a terminal action: a basic-auth or restrict-ips refusal, deny, rate-limit's 429,
                   custom-response, redirect, close-connection, or the agent's 500 when an action
                   failed); policy=rate-limit,deny: answered by one of these actions
                   (`error`: an action failed and the agent answered 500)
The list's own parameters (`before`, `limit`, `ids`, `sort`, `at`) are not filters. Any other
parameter, and any value a filter cannot read, is reported in `errors` (shown above the list and
in the JSON as `filter_errors`) and that filter is not applied: never silently dropped.

Everything but header, body and q becomes SQL (path: the target's spellings, `icontains`; policy:
the partial index of captures a policy answered). Header, body and q first narrow the rows with a
byte search in the database (agentapi.captures.capture_search), then are checked exactly in Python
on the parsed messages, so a page scans a bounded number of rows and tells where to continue; the
filter counts what it checked (`checked`, `oldest_checked`) so the list can say how far the search
went. A compressed body cannot be searched in the database, so rows that name a Content-Encoding
are let through and decoded in Python, each within AGENT_DECODED_BODY_LIMIT.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet

from agentapi.captures.capture_search import CaptureMatch, body_q, either_side_contains, target_q, text_q
from agentapi.captures.message_body import parse_message
from agentapi.models import Capture

PARAMETERS = (
    "q",
    "path",
    "method",
    "status",
    "duration_min",
    "duration_max",
    "size_min",
    "size_max",
    "header",
    "body",
    "tunnel",
    "policy",
)

# Parameters of the list itself (capture_list, views), read elsewhere: not filters, not unknown.
LIST_PARAMETERS = ("before", "limit", "ids", "sort", "at")
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110 5.6.2)
_STATUS = re.compile(r"^(?:([1-5])xx|(\d{3})|pending)$", re.IGNORECASE)
# Actions that can answer a request themselves (refuse, respond, redirect, close): what the filter
# suggests. Any action type is accepted; these are ngrok's names (traffic-policy/actions/*).
ANSWERING_ACTIONS = (
    "basic-auth",
    "circuit-breaker",
    "close-connection",
    "custom-response",
    "deny",
    "jwt-validation",
    "rate-limit",
    "redirect",
    "restrict-ips",
    "verify-webhook",
)
# An action type as ngrok spells them (`basic-auth`, `rate-limit`, `verify-webhook`).
_ACTION = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
BLOCKED = "blocked"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([km]?)i?b?\s*$", re.IGNORECASE)


@dataclass
class CaptureFilter:
    text: str = ""
    path: str = ""
    methods: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # "404", "4xx", "pending"
    duration_min_ms: float | None = None
    duration_max_ms: float | None = None
    size_min: int | None = None
    size_max: int | None = None
    header_name: str = ""
    header_value: str = ""
    body: str = ""
    tunnel: str = ""
    # "blocked" (any action answered), else the action types that may have answered.
    policy_blocked: bool = False
    policy_actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # The raw values as given, to put back into the form.
    given: dict[str, str] = field(default_factory=dict)
    # Rows checked on their bytes by `matches_bytes` so far, and the oldest of them.
    checked: int = 0
    oldest_checked: str | None = None
    oldest_checked_start: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return any(self.given.get(name) for name in PARAMETERS)

    @property
    def needs_bytes(self) -> bool:
        """Whether rows must be checked on their stored bytes after the SQL narrowed them."""
        return bool(self.header_name or self.header_value or self.body or self.text)

    def query_string(self) -> str:
        return urlencode({name: value for name, value in self.given.items() if value})

    # --- SQL ------------------------------------------------------------------------------
    def search_report(self, next_before: str | None) -> dict[str, Any] | None:
        """How far a page's search on the bytes went (None when no filter needs the bytes):
        {checked, finished, oldest_checked, oldest_checked_start (epoch seconds), text}."""
        if not self.needs_bytes:
            return None
        finished = next_before is None
        text = f"searched {self.checked:,} candidate capture(s) in full"
        if not finished and self.oldest_checked_start is not None:
            when = self.oldest_checked_start.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            text = (
                f"searched the newest {self.checked:,} candidate capture(s), back to {when}; older ones as you scroll"
            )
        return {
            "checked": self.checked,
            "finished": finished,
            "oldest_checked": self.oldest_checked,
            "oldest_checked_start": self.oldest_checked_start.timestamp() if self.oldest_checked_start else None,
            "text": text,
        }

    def apply(self, captures: QuerySet[Capture]) -> QuerySet[Capture]:
        if self.text:
            captures = captures.filter(text_q(self.text))
        if self.path:
            captures = captures.filter(target_q(self.path))
        if self.methods:
            captures = captures.filter(method__in=self.methods)
        if self.statuses:
            captures = captures.filter(self._status_q())
        if self.duration_min_ms is not None:
            captures = captures.filter(duration_ns__gte=int(self.duration_min_ms * 1_000_000))
        if self.duration_max_ms is not None:
            captures = captures.filter(duration_ns__lte=int(self.duration_max_ms * 1_000_000))
        if self.size_min is not None:
            captures = captures.filter(response_size__gte=self.size_min)
        if self.size_max is not None:
            captures = captures.filter(response_size__lte=self.size_max)
        if self.tunnel:
            captures = captures.filter(tunnel_name=self.tunnel)
        if self.policy_blocked:
            captures = captures.exclude(policy_action="")
        elif self.policy_actions:
            # The exclusion lets the database see the partial index's condition in the query.
            captures = captures.filter(policy_action__in=self.policy_actions).exclude(policy_action="")
        if self.header_value:
            captures = captures.filter(either_side_contains(self.header_value.encode("utf-8")))
        if self.body:
            captures = captures.filter(body_q(self.body))
        return captures

    def _status_q(self) -> Q:
        q = Q()
        for status in self.statuses:
            if status == "pending":
                q |= Q(status_code__isnull=True)
            elif status.endswith("xx"):
                first = int(status[0]) * 100
                q |= Q(status_code__gte=first, status_code__lt=first + 100)
            else:
                q |= Q(status_code=int(status))
        return q

    # --- exact check on the bytes --------------------------------------------------------
    def matches_bytes(self, capture: Capture) -> bool:
        """The exact check of header, body and q on the stored bytes (reads only `id`,
        `request_raw` and `response_raw`, and `start` when loaded)."""
        self.checked += 1
        self.oldest_checked = capture.id
        if "start" in capture.__dict__:  # never a query per row for a deferred column
            self.oldest_checked_start = capture.start
        request = parse_message(bytes(capture.request_raw), response=False)
        response = (
            parse_message(bytes(capture.response_raw), response=True) if capture.response_raw is not None else None
        )
        messages = [request] if response is None else [request, response]
        if self.header_name or self.header_value:
            name = self.header_name.lower()
            if not any(
                (not name or key.lower() == name) and self.header_value in value
                for message in messages
                for key, value in message.headers
            ):
                return False
        return CaptureMatch(body=self.body, text=self.text)(capture, messages)


def parse_filters(query: Mapping[str, Any]) -> CaptureFilter:
    """The filters of a query string (a QueryDict or a plain mapping). Never raises: what cannot be
    read is in `errors`, and not applied."""
    given = {name: str(query.get(name, "")).strip() for name in PARAMETERS}
    result = CaptureFilter(given=given)
    for name in query:
        if name not in PARAMETERS and name not in LIST_PARAMETERS:
            result.errors.append(f"{name!r} is not a filter (not applied): use {', '.join(PARAMETERS)}")
    result.text = given["q"]
    result.path = given["path"]
    result.body = given["body"]
    result.tunnel = given["tunnel"]
    for method in (m.strip() for m in given["method"].split(",") if m.strip()):
        if _METHOD.match(method):
            result.methods.append(method.upper())
        else:
            result.errors.append(f"method {method!r}: an HTTP method (GET, POST...) is expected")
    for status in (s.strip().lower() for s in given["status"].split(",") if s.strip()):
        if _STATUS.match(status):
            result.statuses.append(status)
        else:
            result.errors.append(f"status {status!r}: use a code (404), a class (4xx) or pending")
    result.duration_min_ms = _number(given["duration_min"], "duration_min", result.errors)
    result.duration_max_ms = _number(given["duration_max"], "duration_max", result.errors)
    result.size_min = _size(given["size_min"], "size_min", result.errors)
    result.size_max = _size(given["size_max"], "size_max", result.errors)
    for action in (a.strip().lower() for a in given["policy"].split(",") if a.strip()):
        if action == BLOCKED:
            result.policy_blocked = True
        elif _ACTION.match(action):
            result.policy_actions.append(action)
        else:
            result.errors.append(f"policy {action!r}: use blocked or an action type (basic-auth, rate-limit...)")
    if given["header"]:
        name, colon, value = given["header"].partition(":")
        result.header_name = name.strip()
        result.header_value = value.strip() if colon else ""
        if not result.header_name and not result.header_value:
            result.errors.append(f"header {given['header']!r}: use Name, Name: value or : value")
    return result


def _number(text: str, name: str, errors: list[str]) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):  # not a number, negative, nan or inf
        errors.append(f"{name} {text!r}: a number of milliseconds, 0 or more, is expected")
        return None
    return value


def _size(text: str, name: str, errors: list[str]) -> int | None:
    if not text:
        return None
    match = _SIZE.match(text)
    if not match:
        errors.append(f"{name} {text!r}: a number of bytes is expected (k and m suffixes allowed)")
        return None
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)
