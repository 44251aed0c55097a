"""Writes capture batches with the ORM and keeps their total size within `inspect_db_size`.

Runs only in the capture sink's writer thread (one Django connection of its own). The running
total of stored bytes is read once with SUM and then kept by adding each batch's sizes; past the
budget, eviction deletes the oldest rows (ids sort by time) down to 90% of it. A row's Traffic
Policy trace is a JSON column, written with the database's own JSON adapter.

WebSocket frames arrive in batches of their own (`write_frames`), after their capture's row: each
row is inserted only while its capture exists (eviction or a clear may have removed it meanwhile),
and the connection's counters are upserted beside them. Frame payloads are bounded per connection
by the recorder's budget (engine/websocket_frames.py) and go with their capture when it is evicted.
Frames have no database cascade (see models.WebSocketFrame): those whose capture was deleted
elsewhere (clear, delete one) are swept after `forget_total` and every `_RECOUNT_EVERY` writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.db.models import Sum

from .models import Capture, WebSocketFrame, WebSocketTotals

log = logging.getLogger(__name__)

_EVICT_CHUNK = 2000
_LOW_WATER = 0.9
# Re-read the true total now and then: other agents sharing the database evict too.
_RECOUNT_EVERY = 1000


class OrmCaptureStore:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._total = 0
        self._recount = True  # read the true total (with SUM) before the next eviction check
        self._writes = 0
        self._sweep = True  # delete frames whose capture is gone, on the next write

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        try:
            return self._write(new, changed)
        except Exception:
            # A broken connection (database restarted) must not poison every later batch.
            connection.close()
            raise

    def _write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        growth = 0
        with transaction.atomic():
            if new:
                self._insert(new)
                growth += sum(row["stored_size"] for row in new)
            if changed:
                growth += self._update(changed)
        if self._sweep:
            self._sweep = False
            self._sweep_frames()
        if self.budget <= 0:
            return []
        try:
            return self._evict(growth)
        except Exception:
            # The batch is committed; a failed eviction (a locked database) is retried next batch.
            log.exception("evicting old captures failed")
            self._recount = True
            return []

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        # One executemany instead of bulk_create: building model instances cost ~40 us a row,
        # which at proxy rates is most of the agent's CPU.
        table = connection.ops.quote_name(Capture._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
        placeholders = ", ".join(["%s"] * len(_COLUMNS))
        updates = ", ".join(
            f"{connection.ops.quote_name(c)} = excluded.{connection.ops.quote_name(c)}" for c in _COLUMNS if c != "id"
        )
        adapt = _datetime_adapter()
        adapt_trace = _trace_adapter()
        values = []
        for row in rows:
            value = [row[c] for c in _COLUMNS]
            value[_START_AT] = adapt(value[_START_AT])
            value[_TRACE_AT] = adapt_trace(value[_TRACE_AT])
            values.append(value)
        with connection.cursor() as cursor:
            # An upsert: a batch whose commit was not acknowledged (and is retried) may be there.
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT (id) DO UPDATE SET {updates}",
                values,
            )

    def _update(self, rows: list[dict[str, Any]]) -> int:
        table = connection.ops.quote_name(Capture._meta.db_table)
        with connection.cursor() as cursor:
            # The size before the update, to keep the running total exact.
            ids = [row["id"] for row in rows]
            placeholders = ",".join(["%s"] * len(ids))
            cursor.execute(f"SELECT id, stored_size FROM {table} WHERE id IN ({placeholders})", ids)
            before = dict(cursor.fetchall())
            adapt_trace = _trace_adapter()
            cursor.executemany(
                f"UPDATE {table} SET duration_ns=%s, request_raw=%s, request_size=%s, response_raw=%s,"
                " response_size=%s, status_code=%s, stored_size=%s, request_complete=%s, response_complete=%s,"
                " incomplete_reason=%s, policy_trace=%s, policy_action=%s WHERE id=%s",
                [
                    (
                        row["duration_ns"],
                        row["request_raw"],
                        row["request_size"],
                        row["response_raw"],
                        row["response_size"],
                        row["status_code"],
                        row["stored_size"],
                        row["request_complete"],
                        row["response_complete"],
                        row["incomplete_reason"],
                        adapt_trace(row["policy_trace"]),
                        row["policy_action"],
                        row["id"],
                    )
                    for row in rows
                    if row["id"] in before
                ],
            )
        return sum(row["stored_size"] - before[row["id"]] for row in rows if row["id"] in before)

    def _evict(self, growth: int) -> list[str]:
        self._writes += 1
        if self._recount or self._writes % _RECOUNT_EVERY == 0:
            self._recount = False
            self._sweep = True
            self._total = Capture.objects.aggregate(total=Sum("stored_size"))["total"] or 0
        else:
            self._total += growth
        if self._total <= self.budget:
            return []
        # Evict down to a low-water mark, so eviction runs once in many batches, not every batch.
        excess = self._total - int(self.budget * _LOW_WATER)
        evicted: list[str] = []
        freed = 0
        for capture_id, size in (
            Capture.objects.order_by("id").values_list("id", "stored_size").iterator(chunk_size=_EVICT_CHUNK)
        ):
            evicted.append(capture_id)
            freed += size
            if freed >= excess:
                break
        if evicted:
            table = connection.ops.quote_name(Capture._meta.db_table)
            with connection.cursor() as cursor:
                # Ids sort by time: one range delete instead of a long IN list. A WebSocket
                # capture's frames and counters first (the database's foreign keys hold them).
                for child in (WebSocketFrame, WebSocketTotals):
                    child_table = connection.ops.quote_name(child._meta.db_table)
                    cursor.execute(f"DELETE FROM {child_table} WHERE capture_id <= %s", [evicted[-1]])
                cursor.execute(f"DELETE FROM {table} WHERE id <= %s", [evicted[-1]])
        self._total = max(self._total - freed, 0)
        return evicted

    def write_frames(self, frames: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        """Store frame rows (the capture sink's `_frame_row` shape) and upsert each connection's
        counters (`capture_id` + FrameRecorder.totals()), in one transaction; rows of a capture
        that is gone are skipped."""
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                quote = connection.ops.quote_name
                captures = quote(Capture._meta.db_table)
                if frames:
                    table = quote(WebSocketFrame._meta.db_table)
                    columns = ", ".join(quote(c) for c in _FRAME_COLUMNS)
                    placeholders = ", ".join(["%s"] * len(_FRAME_COLUMNS))
                    cursor.executemany(
                        f"INSERT INTO {table} ({columns}) SELECT {placeholders}"
                        f" WHERE EXISTS (SELECT 1 FROM {captures} WHERE id = %s)"
                        " ON CONFLICT (capture_id, seq) DO NOTHING",
                        [[row[c] for c in _FRAME_COLUMNS] + [row["capture_id"]] for row in frames],
                    )
                table = quote(WebSocketTotals._meta.db_table)
                columns = ", ".join(quote(c) for c in _TOTALS_COLUMNS)
                placeholders = ", ".join(["%s"] * len(_TOTALS_COLUMNS))
                updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in _TOTALS_COLUMNS[1:])
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) SELECT {placeholders}"
                    f" WHERE EXISTS (SELECT 1 FROM {captures} WHERE id = %s)"
                    f" ON CONFLICT (capture_id) DO UPDATE SET {updates}",
                    [[row[c] for c in _TOTALS_COLUMNS] + [row["capture_id"]] for row in totals],
                )
        except Exception:
            connection.close()
            raise

    def forget_total(self) -> None:
        """Someone deleted captures (clear all): re-read the total on the next write.

        Called from other threads: it only raises a flag the writer thread reads."""
        self._recount = True
        self._sweep = True

    def _sweep_frames(self) -> None:
        """Delete WebSocket frames and counters whose capture is gone (a scan of the frame tables,
        which the recorder's budgets keep small)."""
        quote = connection.ops.quote_name
        captures = quote(Capture._meta.db_table)
        try:
            with connection.cursor() as cursor:
                for child in (WebSocketFrame, WebSocketTotals):
                    table = quote(child._meta.db_table)
                    cursor.execute(
                        f"DELETE FROM {table} WHERE NOT EXISTS"
                        f" (SELECT 1 FROM {captures} WHERE {captures}.id = {table}.capture_id)"
                    )
        except Exception:  # retried later; the captures themselves are stored
            log.exception("sweeping WebSocket frames of deleted captures failed")
            self._sweep = True


def _datetime_adapter() -> Callable[[float], Any]:
    """Epoch seconds as the database wants a DateTimeField value (USE_TZ: stored in UTC)."""
    if connection.vendor == "sqlite":
        # What Django's adapt_datetimefield_value produces for SQLite, without its checks (8% of
        # the writer's time at proxy rates).
        return lambda start: str(dt.datetime.fromtimestamp(start, dt.UTC).replace(tzinfo=None))
    adapt = connection.ops.adapt_datetimefield_value
    return lambda start: adapt(dt.datetime.fromtimestamp(start, dt.UTC))


def _trace_adapter() -> Callable[[list[dict[str, Any]]], Any]:
    """A policy trace (a list of JSON objects) as the database wants a JSONField value: JSON text
    for SQLite, psycopg's Jsonb for PostgreSQL (a plain str would be sent as text, not jsonb).

    Most captures have no policy: their empty trace is adapted once per batch, not per row."""
    adapt = connection.ops.adapt_json_value
    empty = adapt([], None)
    return lambda trace: adapt(trace, None) if trace else empty


_COLUMNS = (
    "id",
    "tunnel_name",
    "remote_addr",
    "start",
    "duration_ns",
    "method",
    "uri",
    "request_raw",
    "request_size",
    "response_raw",
    "response_size",
    "status_code",
    "stored_size",
    "replay_of",
    "request_complete",
    "response_complete",
    "incomplete_reason",
    "policy_trace",
    "policy_action",
)
_START_AT = _COLUMNS.index("start")
_TRACE_AT = _COLUMNS.index("policy_trace")
_FRAME_COLUMNS = (
    "capture_id",
    "seq",
    "direction",
    "time",
    "opcode",
    "fin",
    "compressed",
    "size",
    "payload",
    "close_code",
)
_TOTALS_COLUMNS = (
    "capture_id",
    "client_frames",
    "server_frames",
    "client_bytes",
    "server_bytes",
    "recorded",
    "stopped",
)
