"""The inspector's filters: read from the URL query string, ANDed, applied in the database first.

Query parameters (all optional; an empty value means "no filter"):
  path=TEXT        the request URI contains TEXT (case-insensitive)
  method=GET,POST  one of these methods
  status=404,4xx,pending   one of these codes / classes; `pending` = no response yet
  duration_min=MS, duration_max=MS     duration in milliseconds (decimals allowed)
  size_min=N, size_max=N               response size in bytes; `k`/`m` suffixes (1024-based)
  header=NAME:VALUE  a request or response header NAME (any case) whose value contains VALUE
                     (case-sensitive; values read as UTF-8 text, as the inspector shows them);
                     `NAME` alone: the header is present; `:VALUE`: any header
  body=TEXT        the request or response body contains TEXT (its UTF-8 bytes, case-sensitive),
                   as stored or with its content coding (gzip, br, zstd...) undone
  tunnel=NAME      captured on this tunnel
  policy=blocked   answered by the endpoint's Traffic Policy instead of the service (its trace has
                   a terminal action: a basic-auth or restrict-ips refusal, deny, rate-limit's 429,
                   custom-response, redirect, close-connection, or the agent's 500 when an action
                   failed); policy=rate-limit,deny: answered by one of these actions
                   (`error`: an action failed and the agent answered 500)

Everything but header and body becomes SQL on indexed columns (policy: the partial index of
captures a policy answered). Header and body first narrow the
rows with a byte search in the database (`BlobContains`), then are checked exactly in Python on the
parsed messages, so a page scans a bounded number of rows and tells where to continue. A compressed
body cannot be searched in the database, so the body search also lets through rows that name a
Content-Encoding (in the usual spellings) and decodes them in Python, each within
AGENT_DECODED_BODY_LIMIT.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import Q, QuerySet

from agentapi.captures.blob_search import BlobContains
from agentapi.captures.message_body import parse_message
from agentapi.models import Capture

PARAMETERS = (
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

    @property
    def active(self) -> bool:
        return any(self.given.get(name) for name in PARAMETERS)

    @property
    def needs_bytes(self) -> bool:
        """Whether rows must be checked on their stored bytes after the SQL narrowed them."""
        return bool(self.header_name or self.header_value or self.body)

    def query_string(self) -> str:
        return urlencode({name: value for name, value in self.given.items() if value})

    # --- SQL ------------------------------------------------------------------------------
    def apply(self, captures: QuerySet[Capture]) -> QuerySet[Capture]:
        if self.path:
            captures = captures.filter(uri__icontains=self.path)
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
            captures = captures.filter(_either_side_contains(self.header_value.encode("utf-8")))
        if self.body:
            narrowed = _either_side_contains(self.body.encode("utf-8"))
            for spelling in _CODED:
                narrowed |= _either_side_contains(spelling)
            captures = captures.filter(narrowed)
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
        if self.body:
            needle = self.body.encode("utf-8")
            if not any(needle in message.body or needle in message.decoded_body for message in messages):
                return False
        return True


# A header line naming a content coding, as servers spell it (HTTP/2 hops write lower case).
_CODED = (b"\r\nContent-Encoding:", b"\r\ncontent-encoding:", b"\r\nContent-encoding:")


def _either_side_contains(data: bytes) -> Q:
    return Q(BlobContains("request_raw", data)) | Q(BlobContains("response_raw", data))


def parse_filters(query: Mapping[str, str]) -> CaptureFilter:
    given = {name: str(query.get(name, "")).strip() for name in PARAMETERS}
    result = CaptureFilter(given=given)
    result.path = given["path"]
    result.body = given["body"]
    result.tunnel = given["tunnel"]
    result.methods = [m.strip().upper() for m in given["method"].split(",") if m.strip()]
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
    return result


def _number(text: str, name: str, errors: list[str]) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        errors.append(f"{name} {text!r}: a number of milliseconds is expected")
        return None
    return value if value >= 0 else None


def _size(text: str, name: str, errors: list[str]) -> int | None:
    if not text:
        return None
    match = _SIZE.match(text)
    if not match:
        errors.append(f"{name} {text!r}: a number of bytes is expected (k and m suffixes allowed)")
        return None
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)
