"""The Django admin over captures and tunnels.

The capture table grows large, so the change list never counts it whole (healthchecks' admin over
its pings is the model): `show_full_result_count` is off, facet counts are off, and the paginator
(`CapturePaginator`) counts at most COUNT_CAP rows with a LIMITed query. Past that it says what it
knows and still reaches the oldest rows:
- unfiltered, the database's own estimate of the table's rows (SQLite: the span of rowids, which
  only the oldest rows leave by eviction; PostgreSQL: `pg_class.reltuples`), shown as "about N",
  and the last page lists the oldest rows whatever the estimate says;
- filtered (or with no estimate), the rows up to COUNT_CAP past the page asked, shown as "more than
  N": each jump to the last page listed reaches COUNT_CAP rows further.
Filters are
SimpleListFilters over indexed columns; search matches what the inspector's search matches (the
decoded path, header lines and decoded bodies: agentapi.captures.capture_search, a bounded scan
that says how far it got); "traffic policy"
finds the captures a policy answered (basic-auth, deny, rate-limit...). Captures are
read-only (rendered request and response); the actions replay them through the runtime facade (the
same replay as the API's) or delete them. Tunnels are stopped through the runtime too, wherever they
run: a tunnel another agent runs is stopped by that agent.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from .captures import capture_search
from .captures.capture_search import CaptureMatch, read_body_q, scan, stored_text_q
from .captures.content_views import Body, render_best
from .captures.header_text import display_text
from .captures.message_body import parse_message
from .models import Capture, Tunnel
from .runtime import PeerUnavailable, ReplayRefused, TunnelNotRunning, current_runtime

COUNT_CAP = 10000
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class CountEstimate(int):
    """A result count that is not exact; its text says how ("about 12,505", "more than 10,100"),
    which is what the admin's templates print for `cl.result_count`."""

    qualifier: str

    def __new__(cls, value: int, qualifier: str) -> CountEstimate:
        estimate = super().__new__(cls, value)
        estimate.qualifier = qualifier
        return estimate

    def __str__(self) -> str:
        return f"{self.qualifier} {int(self):,}"


class CapturePaginator(Paginator):
    """Counts at most COUNT_CAP rows (no COUNT(*)); past that an estimate (unfiltered: the
    database's, "about N", with the last page listing the oldest rows) or a lower bound reaching
    COUNT_CAP rows past `page_asked` (1-based), "more than N"."""

    def __init__(self, *args: Any, page_asked: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.page_asked = max(page_asked, 1)

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if not isinstance(object_list, QuerySet):
            return len(object_list)
        ids = object_list.values_list("pk", flat=True)
        seen = len(ids[: COUNT_CAP + 1])
        if seen <= COUNT_CAP:
            return seen
        if not object_list.query.where:
            estimate = _table_rows_estimate(object_list.model._meta.db_table)
            if estimate is not None and estimate > COUNT_CAP:
                return CountEstimate(estimate, "about")
        offset = (self.page_asked - 1) * self.per_page
        beyond = len(ids[offset : offset + COUNT_CAP + 1])
        if beyond <= COUNT_CAP:  # the end is in reach: exact
            return offset + beyond
        return CountEstimate(offset + COUNT_CAP, "more than")

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        count = self.count
        if isinstance(count, CountEstimate) and count.qualifier == "about" and number == self.num_pages > 1:
            # The estimate may be off by the rows deleted since: the last page is the oldest rows.
            queryset: Any = self.object_list
            oldest = list(queryset.reverse()[: self.per_page])
            oldest.reverse()
            return Page(oldest, number, self)
        return super().page(number)


def _table_rows_estimate(table: str) -> int | None:
    """The database's cheap idea of a table's row count, or None when it has none."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # Rowids grow with each insert; eviction and clear remove the oldest, so the span is
            # the count unless rows were deleted in between (then it is a little over).
            cursor.execute(f"SELECT max(rowid) - min(rowid) + 1 FROM {connection.ops.quote_name(table)}")
        elif connection.vendor == "postgresql":
            # Kept by autovacuum and ANALYZE; -1 when the table was never analysed.
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        else:
            return None
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None and row[0] > 0 else None


class TunnelNameFilter(admin.SimpleListFilter):
    title = "tunnel"
    parameter_name = "tunnel"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Running tunnels plus those of recent captures: no DISTINCT over the whole table.
        names = set(Tunnel.objects.values_list("name", flat=True))
        names.update(Capture.objects.order_by("-id").values_list("tunnel_name", flat=True)[:1000])
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Capture]) -> QuerySet[Capture]:
        value = self.value()
        return queryset.filter(tunnel_name=value) if value else queryset


class MethodFilter(admin.SimpleListFilter):
    title = "method"
    parameter_name = "method"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(method, method) for method in METHODS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Capture]) -> QuerySet[Capture]:
        value = self.value()
        return queryset.filter(method=value) if value else queryset


class StatusClassFilter(admin.SimpleListFilter):
    title = "status class"
    parameter_name = "status_class"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1", "1xx"), ("2", "2xx"), ("3", "3xx"), ("4", "4xx"), ("5", "5xx"), ("pending", "pending")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Capture]) -> QuerySet[Capture]:
        value = self.value()
        if value == "pending":
            return queryset.filter(status_code__isnull=True)
        if value in ("1", "2", "3", "4", "5"):
            first = int(value) * 100
            return queryset.filter(status_code__gte=first, status_code__lt=first + 100)
        return queryset


class CaptureTruthFilter(admin.SimpleListFilter):
    """Captures that are not the whole exchange: a side that did not cross whole, or bytes not kept."""

    title = "capture"
    parameter_name = "capture"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("incomplete", "incomplete (a side did not cross whole)"),
            ("truncated", "cut at the capture limit"),
            ("whole", "whole and fully stored"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Capture]) -> QuerySet[Capture]:
        incomplete = Q(request_complete=False) | Q(response_complete=False)
        # stored_size is the kept bytes of both sides; the sizes are what crossed.
        truncated = Q(stored_size__lt=F("request_size") + Coalesce(F("response_size"), 0))
        value = self.value()
        if value == "incomplete":
            return queryset.filter(incomplete)
        if value == "truncated":
            return queryset.filter(truncated)
        if value == "whole":
            return queryset.exclude(incomplete | truncated)
        return queryset


class PolicyFilter(admin.SimpleListFilter):
    """Captures the endpoint's Traffic Policy answered instead of the service (the partial index)."""

    title = "traffic policy"
    parameter_name = "policy"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("blocked", "blocked by policy"), ("passed", "answered by the service")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Capture]) -> QuerySet[Capture]:
        value = self.value()
        if value == "blocked":
            return queryset.exclude(policy_action="")
        if value == "passed":
            return queryset.filter(policy_action="")
        return queryset


def _render_trace(trace: list[dict[str, Any]]) -> str:
    """The policy's steps as a table, in the order they ran; the step that answered instead of
    the service says so."""
    if not trace:
        return format_html('<p class="help">{}</p>', "No Traffic Policy action ran on this exchange.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
        (
            (step["phase"], step["rule"], step["action"], step["outcome"], _ANSWERED if step["terminal"] else "")
            for step in trace
        ),
    )
    return format_html("<table>{}<tbody>{}</tbody></table>", _TRACE_HEAD, rows)


_ANSWERED = mark_safe("<strong>answered</strong>")
_TRACE_HEAD = mark_safe("<thead><tr><th>phase</th><th>rule</th><th>action</th><th>outcome</th><th></th></tr></thead>")


def _render_message(capture: Capture, raw: bytes | None, size: int | None, side: str) -> str:
    if raw is None:
        if side == "response" and not capture.response_complete:
            reason = capture.incomplete_reason or "the connection ended early"
            return format_html('<p class="errornote">No response: {}.</p>', reason)
        return format_html('<p class="help">no response yet</p>')
    message = parse_message(raw, response=side == "response")
    parts = []
    if len(raw) < (size or 0):
        parts.append(format_html('<p class="help">captured {} of {} bytes</p>', len(raw), size))
    if not (capture.request_complete if side == "request" else capture.response_complete):
        reason = capture.incomplete_reason or "the connection ended early"
        parts.append(format_html('<p class="errornote">The {} is incomplete: {}.</p>', side, reason))
    parts.append(format_html("<pre>{}</pre>", display_text(message.head_bytes).rstrip()))
    view = render_best(Body(message.decoded_body, message.content_type))
    kind = view["view"]
    if kind == "image":
        src = reverse("inspector-body", args=[capture.id, side])
        parts.append(format_html('<img src="{}" alt="image body" style="max-width:600px">', src))
    elif kind in ("form", "multipart"):
        rows = (
            view["fields"]
            if kind == "form"
            else [(p["name"], p["value"] or f"{p['size']} bytes") for p in view["parts"]]
        )
        parts.append(format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)))
    elif kind != "empty":
        if view.get("error"):
            error = view["error"]
            parts.append(
                format_html(
                    '<p class="errornote">syntax error at line {}, column {}: {}</p>',
                    error["line"],
                    error["column"],
                    error["message"],
                )
            )
        if view.get("note"):
            parts.append(format_html('<p class="help">{}</p>', view["note"]))
        parts.append(format_html("<pre>{}</pre>", view.get("text", "")))
    return format_html_join("", "{}", ((part,) for part in parts))


@admin.register(Capture)
class CaptureAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "tunnel_name",
        "method",
        "short_uri",
        "status_code",
        "duration",
        "response_size",
        "capture_truth",
        "blocked_by_policy",
        "start",
    )
    list_display_links = ("id",)
    list_filter = (TunnelNameFilter, MethodFilter, StatusClassFilter, CaptureTruthFilter, PolicyFilter)
    search_fields = ("uri",)
    search_help_text = (
        "Path (as shown: percent-decoded, any case), or text in a header or a body of the request or response "
        "(as shown: decoded gzip/br/zstd, JSON escapes and form encoding read; exact case)."
    )
    ordering = ("-id",)
    list_per_page = 100
    show_full_result_count = False
    # Facet counts would be one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = CapturePaginator
    actions = ("replay_selected", "delete_selected")
    fields = (
        "id",
        "tunnel_name",
        "remote_addr",
        "start",
        "duration",
        "method",
        "uri",
        "status_code",
        "request_size",
        "response_size",
        "replay_of",
        "request_complete",
        "response_complete",
        "incomplete_reason",
        "policy_action",
        "traffic_policy",
        "stored",
        "inspector_link",
        "rendered_request",
        "rendered_response",
    )
    readonly_fields = fields

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Capture],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> CapturePaginator:
        try:
            page_asked = int(request.GET.get("p", 1))
        except ValueError:
            page_asked = 1
        return CapturePaginator(queryset, per_page, orphans, allow_empty_first_page, page_asked=page_asked)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Capture]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "agentapi_capture_changelist":
            # The list shows metadata only: never load the stored bytes (or traces) of a hundred rows.
            queryset = queryset.defer("request_raw", "response_raw", "policy_trace")
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Capture], search_term: str
    ) -> tuple[QuerySet[Capture], bool]:
        """The inspector's free-text search (`?q=`, agentapi.captures.capture_search): what the
        database finds alone, plus the rows only a reading of the body confirms (compressed, JSON
        escaped, form encoded), checked newest first up to SEARCH_SCAN_LIMIT; past that the page
        says how far it searched."""
        term = search_term.strip()
        if not term:
            return queryset, False
        read = scan(queryset.filter(read_body_q(term)), CaptureMatch(text=term), limit=capture_search.SEARCH_SCAN_LIMIT)
        if not read.finished:
            messages.info(
                request,
                f"Compressed, JSON-escaped and form-encoded bodies were searched in the newest {read.checked:,} "
                f"captures that have one (back to {read.oldest_start:%Y-%m-%d %H:%M:%S %Z}); "
                "text stored as typed is searched in all.",
            )
        return queryset.filter(stored_text_q(term) | Q(id__in=read.ids)), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="path", ordering="uri")
    def short_uri(self, capture: Capture) -> str:
        return capture.uri if len(capture.uri) <= 80 else capture.uri[:77] + "..."

    @admin.display(description="duration", ordering="duration_ns")
    def duration(self, capture: Capture) -> str:
        ms = capture.duration_ns / 1_000_000
        return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.2f}ms"

    @admin.display(description="capture")
    def capture_truth(self, capture: Capture) -> str:
        """Empty for a whole, fully stored exchange; else which side is incomplete or cut."""
        marks = [
            f"{side} incomplete"
            for side, whole in (("request", capture.request_complete), ("response", capture.response_complete))
            if not whole
        ]
        if capture.stored_size < capture.request_size + (capture.response_size or 0):
            marks.append("cut at the capture limit")
        if not marks:
            return ""
        return format_html('<span title="{}">&#9888; {}</span>', capture.incomplete_reason, ", ".join(marks))

    @admin.display(description="blocked by policy", ordering="policy_action")
    def blocked_by_policy(self, capture: Capture) -> str:
        """The Traffic Policy action that answered instead of the service; empty when the service did."""
        if not capture.policy_action:
            return ""
        return format_html(
            '<span title="{}">&#9940; {}</span>', "answered by the Traffic Policy", capture.policy_action
        )

    @admin.display(description="traffic policy")
    def traffic_policy(self, capture: Capture) -> str:
        return _render_trace(capture.policy_trace)

    @admin.display(description="stored bytes")
    def stored(self, capture: Capture) -> str:
        parts = [f"request {len(capture.request_raw)} of {capture.request_size}"]
        if capture.response_raw is not None:
            parts.append(f"response {len(capture.response_raw)} of {capture.response_size}")
        return "; ".join(parts)

    @admin.display(description="inspector")
    def inspector_link(self, capture: Capture) -> str:
        return format_html('<a href="{}#{}">open in the inspector</a>', reverse("inspector-http"), capture.id)

    @admin.display(description="request")
    def rendered_request(self, capture: Capture) -> str:
        return _render_message(capture, bytes(capture.request_raw), capture.request_size, "request")

    @admin.display(description="response")
    def rendered_response(self, capture: Capture) -> str:
        raw = bytes(capture.response_raw) if capture.response_raw is not None else None
        return _render_message(capture, raw, capture.response_size, "response")

    @admin.action(description="Replay selected captures")
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[Capture]) -> None:
        runtime = current_runtime()
        if runtime is None:
            self.message_user(request, "No tunnel engine runs in this process.", messages.ERROR)
            return
        replayed, skipped = 0, []
        for capture in queryset.order_by("id")[:100]:
            try:
                async_to_sync(runtime.replay)(capture)
            except TunnelNotRunning:
                skipped.append(f"{capture.id} (tunnel {capture.tunnel_name!r} is not running)")
                continue
            except ReplayRefused as error:  # cut at the capture limit, incomplete, not an http tunnel
                skipped.append(f"{capture.id} ({error})")
                continue
            replayed += 1
        if replayed:
            self.message_user(request, f"Replayed {replayed} capture(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, "Not replayed: " + "; ".join(skipped), messages.WARNING)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Capture]) -> None:
        super().delete_queryset(request, queryset)
        _forget_stored_total()

    def delete_model(self, request: HttpRequest, obj: Capture) -> None:
        super().delete_model(request, obj)
        _forget_stored_total()


def _forget_stored_total() -> None:
    """Captures were deleted behind the capture store's back: let it re-read its running total."""
    runtime = current_runtime()
    if runtime is not None:
        runtime.forget_stored_total()


@admin.register(Tunnel)
class TunnelAdmin(admin.ModelAdmin):
    list_display = ("name", "proto", "public_url", "addr", "inspect", "agent_id", "created")
    list_filter = ("proto", "inspect")
    search_fields = ("name", "public_url", "addr")
    readonly_fields = (
        "name",
        "tunnel_id",
        "proto",
        "public_url",
        "addr",
        "inspect",
        "definition",
        "agent_id",
        "created",
    )
    actions = ("stop_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A row mirrors a running listener: stop the tunnel (action) rather than delete the row.
        return False

    @admin.action(description="Stop selected tunnels")
    def stop_selected(self, request: HttpRequest, queryset: QuerySet[Tunnel]) -> None:
        runtime = current_runtime()
        if runtime is None:
            self.message_user(request, "No tunnel engine runs in this process.", messages.ERROR)
            return
        stopped, not_stopped = [], []
        for tunnel in queryset:
            try:
                # Routed to the agent that runs it when that is another one sharing the database.
                async_to_sync(runtime.stop_tunnel)(tunnel.name)
            except TunnelNotRunning:
                not_stopped.append(f"{tunnel.name} (not running)")
                continue
            except PeerUnavailable as error:
                not_stopped.append(f"{tunnel.name} ({error})")
                continue
            stopped.append(tunnel.name)
        if stopped:
            self.message_user(request, "Stopped: " + ", ".join(stopped), messages.SUCCESS)
        if not_stopped:
            self.message_user(request, "Not stopped: " + "; ".join(not_stopped), messages.WARNING)
