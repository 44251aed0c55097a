"""The admin's capture list over many rows: an honest count without COUNT(*), the oldest reachable.

Regression: the admin said "10000 captures" when 12,505 were stored, and the oldest 2,505 could
not be paged to.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

import agentapi.admin as capture_admin
from agentapi.models import Capture

_RAW = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture
def admin_client(db: None) -> Client:
    # No password: hashing one costs a second, and force_login needs none.
    user = User.objects.create(username="admin", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST="127.0.0.1:4040")
    client.force_login(user)
    return client


def store(count: int, *, method: str = "GET", first: int = 0) -> list[str]:
    """`count` captures, oldest first; their ids."""
    rows = [
        Capture(
            id=f"airt_{n:027d}",
            tunnel_name="web",
            remote_addr="127.0.0.1",
            start="2025-01-01T00:00:00Z",
            method=method,
            uri=f"/x/{n}",
            request_raw=_RAW,
            request_size=len(_RAW),
            status_code=200,
        )
        for n in range(first, first + count)
    ]
    Capture.objects.bulk_create(rows, batch_size=2000)
    return [row.id for row in rows]


def analysed() -> None:
    """What autovacuum does for PostgreSQL in real use: its estimate comes from the last ANALYZE
    (SQLite's from the rowid span needs nothing)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE agentapi_capture")


def listed(response) -> list[str]:
    return [capture.id for capture in response.context["cl"].result_list]


def paginator_line(response) -> str:
    html = response.content.decode()
    line = re.search(r'<p class="paginator">(.*?)</p>', html, re.S)
    assert line
    return " ".join(re.sub(r"<[^>]+>", " ", line.group(1)).split())


def test_twelve_thousand_captures_are_counted_honestly_and_the_oldest_reached(admin_client) -> None:
    ids = store(12_505)
    analysed()
    with CaptureQueriesContext(connection) as queries:
        first = admin_client.get("/admin/agentapi/capture/")
    assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert "about 12,505 captures" in paginator_line(first)
    assert "10000 captures" not in first.content.decode()
    assert listed(first)[0] == ids[-1]
    # The last page listed holds the oldest capture.
    last_page = first.context["cl"].paginator.num_pages
    assert last_page == 126
    last = admin_client.get(f"/admin/agentapi/capture/?p={last_page}")
    assert last.status_code == 200
    assert listed(last)[-1] == ids[0]
    assert listed(last) == ids[99::-1]


def test_the_last_page_lists_the_oldest_even_when_rows_in_between_were_deleted(admin_client, monkeypatch) -> None:
    monkeypatch.setattr(capture_admin, "COUNT_CAP", 150)
    ids = store(300)
    Capture.objects.filter(id__in=ids[100:140]).delete()  # SQLite's rowid span now overstates by 40
    analysed()
    first = admin_client.get("/admin/agentapi/capture/")
    expected = "about 300 captures" if connection.vendor == "sqlite" else "about 260 captures"
    assert expected in paginator_line(first)
    last = admin_client.get("/admin/agentapi/capture/?p=3")
    assert listed(last)[-1] == ids[0]


def test_a_filtered_list_past_the_cap_says_more_than_and_pages_on_to_the_oldest(admin_client, monkeypatch) -> None:
    monkeypatch.setattr(capture_admin, "COUNT_CAP", 250)
    store(70, method="POST")
    gets = store(700, method="GET", first=100)
    first = admin_client.get("/admin/agentapi/capture/?method=GET")
    assert "more than 250 captures" in paginator_line(first)
    assert first.context["cl"].paginator.num_pages == 3
    # Each last page listed reaches further, until the end is in reach and the count is exact.
    page = 3
    seen: list[str] = []
    while True:
        response = admin_client.get(f"/admin/agentapi/capture/?method=GET&p={page}")
        assert response.status_code == 200
        seen = listed(response)
        num_pages = response.context["cl"].paginator.num_pages
        if num_pages == page:
            break
        page = num_pages
    assert "700 captures" in paginator_line(response)
    assert "more than" not in paginator_line(response)
    assert seen[-1] == gets[0]


def test_a_small_table_is_counted_exactly(admin_client) -> None:
    store(120)
    response = admin_client.get("/admin/agentapi/capture/")
    assert "120 captures" in paginator_line(response)
    assert "about" not in paginator_line(response)
