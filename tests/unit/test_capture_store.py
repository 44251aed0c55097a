"""The ORM capture store against the real database: upserts, size accounting, eviction, the
start time's text."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db import connection

from agentapi import capture_store
from agentapi.capture_store import OrmCaptureStore, sqlite_datetime
from agentapi.models import Capture

pytestmark = pytest.mark.django_db


def row(capture_id: str, size: int = 100, status: int | None = 200) -> dict:
    return {
        "id": capture_id,
        "tunnel_name": "t",
        "remote_addr": "127.0.0.1",
        "start": 1_700_000_000.25,
        "duration_ns": 5,
        "method": "GET",
        "uri": "/",
        "request_raw": b"r" * size,
        "request_size": size,
        "response_raw": b"",
        "response_size": 0,
        "status_code": status,
        "stored_size": size,
        "replay_of": "",
        "request_complete": True,
        "response_complete": True,
        "incomplete_reason": "",
        "policy_trace": [],
        "policy_action": "",
    }


def test_writing_the_same_new_row_twice_is_harmless() -> None:
    store = OrmCaptureStore(budget=0)
    store.write([row("airt_1")], [])
    store.write([row("airt_1", status=201)], [])
    assert Capture.objects.get(id="airt_1").status_code == 201


def test_a_store_without_a_bound_keeps_no_map_of_its_rows() -> None:
    # inspect_db_size 0 or less: nothing is ever evicted, so the map eviction reads must not grow
    # one entry per capture for the life of the process.
    store = OrmCaptureStore(0)
    for batch in range(200):
        assert store.write([row(f"airt_{batch:04d}{n}") for n in range(5)], []) == []
    assert Capture.objects.count() == 1000
    assert len(store._chunks) == 0


def test_interleaved_batches_of_two_processes_stay_within_the_budget() -> None:
    # --workers N: each process's batches reach the one store in turn, so a batch may hold ids
    # older than the previous batch's newest; eviction must still free what it planned.
    store = OrmCaptureStore(30_000)
    for step in range(120):
        first = [row(f"airt_{step:04d}{n}a", size=1000) for n in range(3)]
        late = [row(f"airt_{step - 1:04d}{n}b", size=1000) for n in range(3)] if step else []
        store.write(first, [])
        if late:
            store.write(late, [])
        stored = sum(len(c.request_raw) for c in Capture.objects.all())
        assert stored <= 30_000
        if step > 80:
            assert stored >= 30_000 * 0.8  # never far below the low-water mark


def test_the_oldest_rows_go_down_to_the_low_water_mark() -> None:
    store = OrmCaptureStore(budget=1000)
    evicted = store.write([row(f"airt_{n:02d}") for n in range(12)], [])
    assert evicted == [f"airt_{n:02d}" for n in range(3)]  # 1200 bytes -> at most 900 kept
    assert Capture.objects.order_by("id").values_list("id", flat=True).first() == "airt_03"


def test_a_cleared_table_is_recounted() -> None:
    store = OrmCaptureStore(budget=1000)
    store.write([row(f"airt_{n:02d}") for n in range(9)], [])
    Capture.objects.all().delete()
    store.forget_total()
    assert store.write([row("airt_99")], []) == []
    assert Capture.objects.count() == 1


def test_batches_larger_than_one_statement_are_stored_whole() -> None:
    store = OrmCaptureStore(budget=0)
    store.write([row(f"airt_{n:03d}") for n in range(130)], [])  # 52 rows per INSERT on SQLite: 3 statements
    assert Capture.objects.count() == 130


def test_eviction_counts_a_row_that_grew_when_it_completed() -> None:
    store = OrmCaptureStore(budget=1000)
    store.write([row(f"airt_{n:02d}") for n in range(8)], [])  # 800 bytes
    assert store.write([], [row("airt_07", size=400)]) == ["airt_00", "airt_01"]  # 1100 bytes -> 900


def test_rows_another_agent_wrote_are_found_by_the_next_store() -> None:
    OrmCaptureStore(budget=0).write([row(f"airt_{n:02d}") for n in range(9)], [])  # the other agent's
    store = OrmCaptureStore(budget=1000)
    evicted = store.write([row("airt_99", size=300)], [])  # 1200 bytes: its first write reads them
    assert evicted == ["airt_00", "airt_01", "airt_02"]


def test_a_total_moved_by_another_agent_is_seen_after_the_recount_period(monkeypatch: pytest.MonkeyPatch) -> None:
    store = OrmCaptureStore(budget=1000)
    store.write([row("airt_50")], [])
    OrmCaptureStore(budget=0).write([row(f"airt_{n:02d}") for n in range(9)], [])  # behind its back
    monkeypatch.setattr(capture_store, "_RECOUNT_SECONDS", 0.0)
    assert store.write([row("airt_60")], []) == ["airt_00", "airt_01"]  # 1100 bytes -> 900


def test_a_big_row_is_evicted_by_its_blob_lengths() -> None:
    store = OrmCaptureStore(budget=10_000)
    big = row("airt_00", size=9_000)
    big["response_raw"], big["response_size"], big["stored_size"] = b"x" * 500, 500, 9_500
    store.write([big], [])
    assert store.write([row("airt_01", size=600)], []) == ["airt_00"]
    assert list(Capture.objects.values_list("id", flat=True)) == ["airt_01"]


def test_start_times_are_written_as_django_writes_them_for_sqlite() -> None:
    # Django's SQLite adapt_datetimefield_value: the UTC time, naive, as str() gives it.
    reference = lambda start: str(dt.datetime.fromtimestamp(start, dt.UTC).replace(tzinfo=None))  # noqa: E731
    edges = [
        1_700_000_000.0,  # no fraction: no ".000000"
        1_700_000_000.25,
        1_700_000_000.0000005,  # half a microsecond: rounded half to even
        1_700_000_000.0000015,
        1_700_000_000.9999996,  # rounds up into the next second
        0.5,
    ]
    rng = random.Random(7)
    starts = edges + [rng.uniform(1.6e9, 1.9e9) for _ in range(20_000)]
    adapt = sqlite_datetime()
    assert [adapt(start) for start in starts] == [reference(start) for start in starts]


def test_big_captures_are_not_bound_to_one_statement_together() -> None:
    # The database copies what a statement binds: 52 captures of 1 MiB in one INSERT held ~100 MB.
    statements: list[int] = []

    def count_rows(execute, sql, params, many, context):
        if sql.startswith("INSERT INTO") and "agentapi_capture" in sql:
            statements.extend([len(p) // 19 for p in params] if many else [len(params) // 19])
        return execute(sql, params, many, context)

    big = [row(f"airt_{n}", size=700_000) for n in range(3)]
    with connection.execute_wrapper(count_rows):
        OrmCaptureStore(budget=0).write(big + [row(f"airt_s{n}") for n in range(3)], [])
    assert Capture.objects.count() == 6
    assert statements == [2, 4]  # a statement ends once its bodies reach 1 MiB


def test_the_agents_sqlite_connections_evict_without_zeroing_whole_bodies(tmp_path, settings) -> None:
    # Debian builds SQLite with SECURE_DELETE on: evicting a 1 MiB capture then wrote its body
    # again as zeros through the WAL (3.2 ms of CPU per MiB stored against 1.3, make bench-store).
    # Through Django's own SQLite backend with the settings' options (CI's tests run on PostgreSQL,
    # so the project's default database is not the one to ask).
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(tmp_path / "agent.sqlite3"),
                "OPTIONS": settings.SQLITE_OPTIONS,
            }
        }
    )
    agent_db = handler["default"]
    try:
        with agent_db.cursor() as cursor:
            cursor.execute("PRAGMA secure_delete")
            assert cursor.fetchone() == (2,)  # 2: FAST
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone() == ("wal",)
            cursor.execute("PRAGMA page_size")
            assert cursor.fetchone() == (16384,)
    finally:
        agent_db.close()
