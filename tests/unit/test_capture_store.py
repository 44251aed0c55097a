"""The ORM capture store against the real database: upserts, size accounting, eviction."""

from __future__ import annotations

import pytest

from agentapi.capture_store import OrmCaptureStore
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
