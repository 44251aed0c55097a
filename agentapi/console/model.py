"""The console's view model: what the terminal shows, built from runtime snapshots and capture deltas.

Rules (ngrok 3's console, `agent/config/v3.mdx` console_ui and the screenshots quoted in the spec,
section 1e):
- The header: Session Status `online`, Account, Version, Region, Latency, Web Interface, one
  Forwarding line per running tunnel (`public_url -> addr`, in the order they started).
- Connections: `ttl opn rt1 rt5 p50 p90` for the whole agent, from the tunnels' metrics as the API
  shows them (`conns`: count, gauge, rate1, rate5 in connections per second, p50/p90 connection
  durations in nanoseconds, shown here in seconds). Counts and rates add up across tunnels; a
  percentile cannot be added, so with several tunnels it is their count-weighted mean (exact for
  one tunnel, the usual case).
- HTTP Requests: one row per exchange, newest first (by start time, then id), at most
  `max_requests` kept. Rows come from the capture sink's `captures.stored` announcements (the
  summary shape of agentapi.captures.summary): a row appears when its exchange starts (status still
  pending) and is completed by the later update. Only this agent's tunnels count: agents sharing a
  Redis channel layer hear each other's announcements. Evictions and "clear" in the inspector do
  not erase rows: the console is a record of the traffic seen, as ngrok's is.
- Times are the exchange's start in local time with milliseconds and the zone's abbreviation
  (`10:52:07.254 CET`, ngrok 3.11's format).

Nothing here touches a terminal, rich or Django: the loop feeds it and the terminal driver reads
frozen `ConsoleView` values from it.
"""

from __future__ import annotations

import datetime as dt
import http
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_REQUESTS = 500  # rows kept; a terminal shows fewer


class TunnelLike(Protocol):
    """What the console reads of a running tunnel (agentapi.runtime.TunnelInfo has it)."""

    @property
    def name(self) -> str: ...
    @property
    def public_url(self) -> str: ...
    @property
    def addr(self) -> str: ...
    @property
    def proto(self) -> str: ...
    @property
    def metrics(self) -> Mapping[str, Mapping[str, Any]]: ...


@dataclass(frozen=True)
class RequestRow:
    """One exchange as the console lists it; `start` in epoch seconds, `status_code` None while pending."""

    id: str
    tunnel_name: str
    start: float
    method: str
    uri: str
    status_code: int | None
    remote_addr: str

    @property
    def status_text(self) -> str:
        """`200 OK`, `499` for a code with no standard reason, "" while pending."""
        if self.status_code is None:
            return ""
        return f"{self.status_code} {reason_phrase(self.status_code)}".rstrip()


@dataclass(frozen=True)
class Forwarding:
    public_url: str
    addr: str


@dataclass(frozen=True)
class Connections:
    """The Connections row: totals and per-second rates; p50/p90 in seconds."""

    ttl: int = 0
    opn: int = 0
    rt1: float = 0.0
    rt5: float = 0.0
    p50: float = 0.0
    p90: float = 0.0


@dataclass(frozen=True)
class ConsoleView:
    """Everything one frame shows, frozen (safe to hand to the terminal thread)."""

    title: str
    version: str
    web_url: str
    account: str = "local"
    region: str = "local"
    status: str = "online"
    latency: str | None = None  # None: no cloud leg to measure
    forwarding: tuple[Forwarding, ...] = ()
    connections: Connections = field(default_factory=Connections)
    show_requests: bool = False  # any HTTP tunnel (or a row already seen)
    requests: tuple[RequestRow, ...] = ()  # newest first
    notice: str = ""  # the latest warning, shown under the title


def reason_phrase(status_code: int) -> str:
    """The standard reason phrase of a status code, "" when it has none (499, 599...)."""
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return ""


def format_time(epoch: float, tz: dt.tzinfo | None = None) -> str:
    """`HH:MM:SS.mmm ZONE` of an epoch time, in `tz` (None: the process's local zone)."""
    moment = dt.datetime.fromtimestamp(epoch, tz) if tz is not None else dt.datetime.fromtimestamp(epoch).astimezone()
    zone = moment.strftime("%Z") or moment.strftime("%z")
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d} {zone}".rstrip()


def connections_of(tunnels: Iterable[TunnelLike]) -> Connections:
    """The Connections row of the whole agent from each tunnel's `metrics["conns"]`."""
    ttl = opn = 0
    rt1 = rt5 = p50_sum = p90_sum = 0.0
    for tunnel in tunnels:
        conns = tunnel.metrics.get("conns") or {}
        count = int(conns.get("count") or 0)
        ttl += count
        opn += int(conns.get("gauge") or 0)
        rt1 += float(conns.get("rate1") or 0)
        rt5 += float(conns.get("rate5") or 0)
        p50_sum += count * float(conns.get("p50") or 0)
        p90_sum += count * float(conns.get("p90") or 0)
    if ttl == 0:
        return Connections(opn=opn, rt1=rt1, rt5=rt5)
    return Connections(ttl=ttl, opn=opn, rt1=rt1, rt5=rt5, p50=p50_sum / ttl / 1e9, p90=p90_sum / ttl / 1e9)


def row_of(summary: Mapping[str, Any]) -> RequestRow:
    """A console row from a capture summary (the capture sink's live delta shape)."""
    status = summary.get("status_code")
    return RequestRow(
        id=str(summary.get("id") or ""),
        tunnel_name=str(summary.get("tunnel_name") or ""),
        start=float(summary.get("start") or 0.0),
        method=str(summary.get("method") or ""),
        uri=str(summary.get("uri") or ""),
        status_code=int(status) if status is not None else None,
        remote_addr=str(summary.get("remote_addr") or ""),
    )


class ConsoleModel:
    """The console's state, fed on the event loop; `view()` gives the frame to draw.

    `changes` counts every change, so a driver redraws only when it moved.
    """

    def __init__(
        self,
        *,
        version: str,
        web_url: str,
        title: str = "tunnel-agent",
        region: str = "local",
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self._base = ConsoleView(title=title, version=version, web_url=web_url, region=region or "local")
        self._max_requests = max_requests
        self._forwarding: tuple[Forwarding, ...] = ()
        self._connections = Connections()
        self._names: set[str] = set()  # every tunnel seen running here (late deltas still count)
        self._http = False
        self._rows: dict[str, RequestRow] = {}
        self._notice = ""
        self._view: ConsoleView | None = None
        self.changes = 0

    def knows_tunnel(self, name: str) -> bool:
        """Whether `name` has been seen running in this agent."""
        return name in self._names

    def set_tunnels(self, tunnels: Sequence[TunnelLike]) -> None:
        """The running tunnels, as `runtime.tunnels()` gives them (metrics included)."""
        forwarding = tuple(Forwarding(t.public_url, t.addr) for t in tunnels)
        connections = connections_of(tunnels)
        self._names.update(t.name for t in tunnels)
        is_http = self._http or any(t.proto in ("http", "https") for t in tunnels)
        if (forwarding, connections, is_http) != (self._forwarding, self._connections, self._http):
            self._forwarding, self._connections, self._http = forwarding, connections, is_http
            self._changed()

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Take one `captures` group message; True when the view changed.

        `captures.stored` adds and completes rows of this agent's tunnels; anything else is ignored.
        """
        if event.get("type") != "captures.stored":
            return False
        changed = False
        for summary in [*(event.get("created") or ()), *(event.get("updated") or ())]:
            if summary.get("tunnel_name") not in self._names:
                continue
            row = row_of(summary)
            if row.id and self._rows.get(row.id) != row:
                self._rows[row.id] = row
                changed = True
        if changed:
            # Trimmed in steps (at twice the limit, back to it): one sort per max_requests rows, not
            # one per batch once the list is full.
            if len(self._rows) > 2 * self._max_requests:
                kept = _newest_first(self._rows.values())[: self._max_requests]
                self._rows = {row.id: row for row in kept}
            self._changed()
        return changed

    def set_notice(self, text: str) -> None:
        """Show `text` (one line: the latest warning) under the title."""
        text = " ".join(text.split())
        if text != self._notice:
            self._notice = text
            self._changed()

    def view(self) -> ConsoleView:
        """The frame to draw now (the same object until something changes)."""
        if self._view is None:
            rows = tuple(_newest_first(self._rows.values())[: self._max_requests])
            self._view = ConsoleView(
                title=self._base.title,
                version=self._base.version,
                web_url=self._base.web_url,
                region=self._base.region,
                forwarding=self._forwarding,
                connections=self._connections,
                show_requests=self._http or bool(rows),
                requests=rows,
                notice=self._notice,
            )
        return self._view

    def _changed(self) -> None:
        self._view = None
        self.changes += 1


def _newest_first(rows: Iterable[RequestRow]) -> list[RequestRow]:
    # Later start first; within one start time the larger id (KSUIDs count up within a second).
    return sorted(rows, key=lambda row: (row.start, row.id), reverse=True)
