"""Writes capture batches with plain SQL and keeps their total size within `inspect_db_size`.

Runs only in a capture writer thread (one Django connection of its own; one writer at a time).
Rules:
- Rows go in as multi-row upserts (`INSERT ... VALUES (...), (...) ON CONFLICT (id) DO UPDATE`):
  a batch retried after an unacknowledged commit is harmless. The statements are built once per
  database, not per batch. A row's Traffic Policy trace is a JSON column, written with the
  database's own JSON adapter.
- The total of stored bytes is read from the database when the store starts and after
  `forget_total` (clear, delete), then kept by adding each batch's sizes; every
  `_RECOUNT_SECONDS` a SUM checks it (other agents sharing the database write and evict too).
- Sizes are read from the database as the blobs' lengths, never the `stored_size` column (equal
  by definition): SQLite reads a column that follows a big blob by walking its overflow pages.
- Where the bytes lie is kept in memory as runs of rows in id order (about budget/64 bytes each),
  so eviction picks the id bound of the oldest rows to delete without reading the table. Past the
  budget it deletes down to 90% of it, so eviction runs once in many batches: one range delete
  (ids sort by time) that returns the ids and sizes it removed, which keep the total exact.

WebSocket frames arrive in batches of their own (`write_frames`), after their capture's row: each
row is inserted only while its capture exists (eviction or a clear may have removed it meanwhile),
and the connection's counters are upserted beside them. Frame payloads are bounded per connection
by the recorder's budget (engine/websocket_frames.py) and go with their capture when it is evicted.
Frames have no database cascade (see models.WebSocketFrame): those whose capture was deleted
elsewhere (clear, delete one) are swept after `forget_total` and at each recount.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from .models import Capture, WebSocketFrame, WebSocketTotals

log = logging.getLogger(__name__)

_LOW_WATER = 0.9
# Re-read the true total now and then: other agents sharing the database evict too.
_RECOUNT_SECONDS = 10.0
# Eviction picks its bound among this many runs of rows per budget (a run: budget / this bytes),
# finer than the 10% it frees at a time.
_CHUNKS_PER_BUDGET = 64
# Rows per INSERT statement (fewer where the database allows fewer parameters: 52 on SQLite).
_ROWS_PER_INSERT = 64
_STATEMENT_BYTES = 1 << 20
# A row's stored bytes, from the blobs' lengths: length() reads only a blob's header (SQLite's
# record header, PostgreSQL's TOAST pointer), while reading `stored_size`, which follows the
# blobs, makes SQLite walk a big blob's overflow pages (36 ms over 60 rows of 1 MiB).
_SIZE = "length(request_raw) + COALESCE(length(response_raw), 0)"


class OrmCaptureStore:
    """`write(new, changed) -> evicted ids` and `write_frames(frames, totals)`: the capture sink's
    store protocol (engine/capture_sink.py), in one transaction per call. `budget`: bytes of
    stored bodies and heads kept (`inspect_db_size`), 0 or less for no bound. Not thread-safe:
    one writer at a time (the sink's writer thread; with workers, SerialStore's lock)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._total = 0
        # Where the stored bytes lie, oldest first: [newest id, bytes] per run of rows of about
        # `_chunk_bytes`, so eviction picks its id bound without reading the table. Only a
        # guide: the bytes a delete frees are counted from the deleted rows themselves.
        self._chunks: deque[list[Any]] = deque()
        self._chunk_bytes = max(budget // _CHUNKS_PER_BUDGET, 1)
        self._resync = True  # re-read the total and the chunks before the next eviction check
        self._resynced_at = 0.0
        self._sweep = True  # delete frames whose capture is gone, on the next write
        self._sql: _Statements | None = None

    def write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        try:
            return self._write(new, changed)
        except Exception:
            # A broken connection (database restarted) must not poison every later batch.
            connection.close()
            raise

    def _statements(self) -> _Statements:
        sql = self._sql
        if sql is None or sql.vendor != connection.vendor:
            sql = self._sql = _Statements()
        return sql

    def _write(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[str]:
        sql = self._statements()
        growth = 0
        with transaction.atomic():
            if new:
                self._insert(sql, new)
            if changed:
                growth = self._update(sql, changed)
        if new and self.budget > 0:  # without a bound nothing is evicted: no map to keep
            self._add(new)
        if growth and self._chunks:
            self._chunks[-1][1] += growth  # a row that grew is among the newest, near enough
        self._total += growth
        if self._sweep:
            self._sweep = False
            self._sweep_frames()
        if self.budget <= 0:
            return []
        try:
            return self._evict(sql)
        except Exception:
            # The batch is committed; a failed eviction (a locked database) is retried next batch.
            log.exception("evicting old captures failed")
            self._resync = True
            return []

    def _insert(self, sql: _Statements, rows: list[dict[str, Any]]) -> None:
        # Plain SQL instead of bulk_create: building model instances cost ~40 us a row, which at
        # proxy rates is most of the agent's CPU. Several rows per statement: one statement
        # execution per row (executemany) cost more than the rows themselves in SQLite. A
        # statement carries at most about `_STATEMENT_BYTES` of bodies: the database copies the
        # bytes bound to a statement, and 52 captures of 1 MiB at once took 100 MB of memory.
        adapt = sql.adapt_start
        adapt_trace = sql.adapt_trace
        per = sql.rows_per_insert
        whole: list[list[Any]] = []  # statements of `per` rows
        rest: list[tuple[int, list[Any]]] = []  # shorter ones: (rows, values)
        values: list[Any] = []
        count = size = 0
        for row in rows:
            value = [row[c] for c in _COLUMNS]
            value[_START_AT] = adapt(value[_START_AT])
            value[_TRACE_AT] = adapt_trace(value[_TRACE_AT])
            values += value
            count += 1
            size += row["stored_size"]
            if count == per or size >= _STATEMENT_BYTES:
                if count == per:
                    whole.append(values)
                else:
                    rest.append((count, values))
                values = []
                count = size = 0
        if count:
            rest.append((count, values))
        with connection.cursor() as cursor:
            if whole:
                cursor.executemany(sql.insert_many, whole)
            for count, values in rest:
                cursor.execute(sql.insert(count), values)

    def _update(self, sql: _Statements, rows: list[dict[str, Any]]) -> int:
        with connection.cursor() as cursor:
            # The size before the update, to keep the running total exact (length(), not
            # stored_size: SQLite reads a column that follows a big blob through its overflow pages).
            ids = [row["id"] for row in rows]
            cursor.execute(sql.sizes_of(len(ids)), ids)
            before = dict(cursor.fetchall())
            adapt_trace = sql.adapt_trace
            cursor.executemany(
                sql.update,
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

    def _add(self, rows: list[dict[str, Any]]) -> None:
        """Count new rows into the total and the newest chunk (or new ones), in id order."""
        chunks = self._chunks
        cap = self._chunk_bytes
        last = chunks[-1] if chunks else None
        added = 0
        for capture_id, size in sorted((row["id"], row["stored_size"]) for row in rows):
            added += size
            if last is not None and capture_id < last[0]:
                # Older than the newest run (another process's batch, `--workers`, or a record
                # stored late): counted in the run whose range delete removes it, so the runs
                # stay in id order and eviction frees what it planned.
                chunks[bisect.bisect_left(chunks, capture_id, key=_bound)][1] += size
                continue
            if last is not None and last[1] < cap:
                if capture_id > last[0]:
                    last[0] = capture_id
                last[1] += size
            else:
                last = [capture_id, size]
                chunks.append(last)
        self._total += added

    def _evict(self, sql: _Statements) -> list[str]:
        now = time.monotonic()
        if self._resync:
            self._resync = False
            self._sweep = True
            self._resynced_at = now
            self._read_chunks(sql)
        elif now - self._resynced_at > _RECOUNT_SECONDS:
            # Other agents sharing the database write and evict too: re-read the true total (a
            # SUM, ~20 ms over 100,000 rows) and re-read where it lies (~170 ms) only when it moved.
            self._resynced_at = now
            self._sweep = True
            with connection.cursor() as cursor:
                cursor.execute(sql.total)
                (total,) = cursor.fetchone()
            if abs(int(total or 0) - self._total) > self._chunk_bytes:
                self._read_chunks(sql)
        if self._total <= self.budget:
            return []
        # Evict down to a low-water mark, so eviction runs once in many batches, not every batch.
        excess = self._total - int(self.budget * _LOW_WATER)
        chunks = self._chunks
        planned = 0
        bound = ""
        while chunks and planned < excess:
            bound, size = chunks.popleft()
            planned += size
        if not bound:
            return []
        evicted: list[str] = []
        freed = 0
        with transaction.atomic(), connection.cursor() as cursor:
            # Ids sort by time: one range delete instead of a long IN list. A WebSocket
            # capture's frames and counters first (the database's foreign keys hold them).
            for delete_children in sql.delete_children:
                cursor.execute(delete_children, [bound])
            if sql.returning:
                cursor.execute(sql.delete_returning, [bound])
                gone = cursor.fetchall()
            else:
                cursor.execute(sql.sizes_up_to, [bound])
                gone = cursor.fetchall()
                cursor.execute(sql.delete_up_to, [bound])
        for capture_id, size in gone:
            evicted.append(capture_id)
            freed += size or 0
        evicted.sort()
        self._total = max(self._total - freed, 0)
        return evicted

    def _read_chunks(self, sql: _Statements) -> None:
        """The true total and where it lies, from the database (other agents sharing it evict and
        write too; clear and delete remove rows): one grouped query, no row reaches Python."""
        with connection.cursor() as cursor:
            cursor.execute(sql.chunks, [self._chunk_bytes])
            self._chunks = deque([capture_id, int(size or 0)] for capture_id, size in cursor.fetchall())
        self._total = sum(size for _, size in self._chunks)

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
        self._resync = True
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


class _Statements:
    """The store's SQL for the current connection's database, built once (quoting names through
    the connection cost a quarter of a one-row batch), and its value adapters."""

    def __init__(self) -> None:
        quote = connection.ops.quote_name
        self.vendor: str = connection.vendor
        self.adapt_start = _datetime_adapter()
        self.adapt_trace = _trace_adapter()
        table = self.table = quote(Capture._meta.db_table)
        self._insert_head = f"INSERT INTO {table} ({', '.join(quote(c) for c in _COLUMNS)}) VALUES "
        self._one_row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        # An upsert: a batch whose commit was not acknowledged (and is retried) may be there.
        self._upsert = " ON CONFLICT (id) DO UPDATE SET " + ", ".join(
            f"{quote(c)} = excluded.{quote(c)}" for c in _COLUMNS if c != "id"
        )
        limit = connection.features.max_query_params or 65535
        self.rows_per_insert = max(1, min(_ROWS_PER_INSERT, limit // len(_COLUMNS)))
        self.insert_many = self.insert(self.rows_per_insert)
        self.update = (
            f"UPDATE {table} SET duration_ns=%s, request_raw=%s, request_size=%s, response_raw=%s,"
            " response_size=%s, status_code=%s, stored_size=%s, request_complete=%s, response_complete=%s,"
            " incomplete_reason=%s, policy_trace=%s, policy_action=%s WHERE id=%s"
        )
        self.delete_children = [
            f"DELETE FROM {quote(child._meta.db_table)} WHERE capture_id <= %s"
            for child in (WebSocketFrame, WebSocketTotals)
        ]
        # RETURNING (SQLite 3.35+, PostgreSQL): the ids and sizes of the rows deleted, read as
        # they go instead of by a SELECT before.
        self.returning = connection.vendor != "sqlite" or sqlite3.sqlite_version_info >= (3, 35)
        self.delete_returning = f"DELETE FROM {table} WHERE id <= %s RETURNING id, {_SIZE}"
        self.sizes_up_to = f"SELECT id, {_SIZE} FROM {table} WHERE id <= %s"
        self.total = f"SELECT SUM({_SIZE}) FROM {table}"
        self.delete_up_to = f"DELETE FROM {table} WHERE id <= %s"
        # Runs of rows of about %s bytes in id order: a running sum in the primary key's order,
        # integer-divided; one row per run reaches Python.
        self.chunks = (
            f"SELECT MAX(id), SUM(size) FROM (SELECT id, size, (SUM(size) OVER (ORDER BY id"
            f" ROWS UNBOUNDED PRECEDING) - size) / %s AS run FROM (SELECT id, {_SIZE} AS size FROM {table})"
            " AS sized) AS runs GROUP BY run ORDER BY 1"
        )

    def insert(self, rows: int) -> str:
        return self._insert_head + ", ".join([self._one_row] * rows) + self._upsert

    def sizes_of(self, count: int) -> str:
        placeholders = ", ".join(["%s"] * count)
        return f"SELECT id, {_SIZE} FROM {self.table} WHERE id IN ({placeholders})"


def _datetime_adapter() -> Callable[[float], Any]:
    """Epoch seconds as the database wants a DateTimeField value (USE_TZ: stored in UTC)."""
    if connection.vendor == "sqlite":
        return sqlite_datetime()
    adapt = connection.ops.adapt_datetimefield_value
    return lambda start: adapt(dt.datetime.fromtimestamp(start, dt.UTC))


def sqlite_datetime() -> Callable[[float], str]:
    """Epoch seconds as Django's adapt_datetimefield_value writes them for SQLite (naive UTC,
    `str(datetime)`: "2026-11-30 09:12:21.250000", no fraction when it is 0), without building a
    datetime per row (10% of the writer's time at proxy rates): the text of the whole second is
    kept while rows share it, the microseconds rounded half to even as datetime.fromtimestamp
    rounds them (CPython's _PyTime_DoubleToDenominator)."""
    second = -1.0
    text = ""

    def adapt(start: float) -> str:
        nonlocal second, text
        if start < 0:
            return str(dt.datetime.fromtimestamp(start, dt.UTC).replace(tzinfo=None))
        fraction, whole = math.modf(start)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            micro -= 1_000_000
            whole += 1.0
        if whole != second:
            second = whole
            text = str(dt.datetime.fromtimestamp(whole, dt.UTC).replace(tzinfo=None))
        return f"{text}.{micro:06d}" if micro else text

    return adapt


def _trace_adapter() -> Callable[[list[dict[str, Any]]], Any]:
    """A policy trace (a list of JSON objects) as the database wants a JSONField value: JSON text
    for SQLite, psycopg's Jsonb for PostgreSQL (a plain str would be sent as text, not jsonb).

    Most captures have no policy: their empty trace is adapted once, not per row."""
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


def _bound(chunk: list[Any]) -> str:
    """A run's newest id (the runs are [newest id, bytes], in id order)."""
    bound: str = chunk[0]
    return bound
