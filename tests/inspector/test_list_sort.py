"""The list's order and where it starts: sortable columns by keyset, and jumping to a time."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from agentapi.engine.capture_id import CaptureIdFactory


def page(client: Client, query: str) -> dict:
    response = client.get("/inspect/captures.json" + query)
    assert response.status_code == 200, response.content
    return response.json()


def walk(client: Client, query: str, limit: int = 2) -> list[str]:
    """Every id of the list, page after page of `limit`."""
    found: list[str] = []
    body = page(client, f"{query}&limit={limit}")
    found += [c["id"] for c in body["captures"]]
    while body["next_before"]:
        body = page(client, f"{query}&limit={limit}&before={body['next_before']}")
        found += [c["id"] for c in body["captures"]]
    return found


def test_sorting_by_duration_pages_through_every_row_once_in_order(client, make_capture) -> None:
    durations = [5.0, 1.0, 5.0, 30.0, 0.5, 5.0, 12.0]
    made = [make_capture(uri=f"/{n}", duration_ms=ms) for n, ms in enumerate(durations)]
    slowest_first = walk(client, "?sort=-duration")
    # Ties (three of 5 ms) keep the newest first, as the default order does.
    expected = sorted(made, key=lambda c: (-c.duration_ns, [-ord(ch) for ch in c.id]))
    assert slowest_first == [c.id for c in expected]
    fastest_first = walk(client, "?sort=duration", limit=3)
    assert fastest_first == [c.id for c in sorted(made, key=lambda c: (c.duration_ns, c.id))]


def test_pending_rows_sort_last_in_both_directions(client, make_capture) -> None:
    pending = make_capture(status=None, response=None)
    small = make_capture(status=200)
    large = make_capture(status=503)
    assert walk(client, "?sort=status", limit=1) == [small.id, large.id, pending.id]
    assert walk(client, "?sort=-status", limit=1) == [large.id, small.id, pending.id]


def test_sorting_by_path_and_size_and_tunnel(client, make_capture) -> None:
    b = make_capture(uri="/b", tunnel_name="zeta", response_size=10)
    a = make_capture(uri="/a~tilde", tunnel_name="alpha", response_size=2_000_000)
    c = make_capture(uri="/c", tunnel_name="mid", response_size=300)
    assert walk(client, "?sort=path", limit=1) == [a.id, b.id, c.id]
    assert walk(client, "?sort=-size", limit=1) == [a.id, c.id, b.id]
    assert walk(client, "?sort=tunnel", limit=1) == [a.id, c.id, b.id]


def test_sorting_keeps_the_filters(client, make_capture) -> None:
    make_capture(uri="/skip", duration_ms=99)
    slow = make_capture(uri="/api/slow", duration_ms=50)
    fast = make_capture(uri="/api/fast", duration_ms=1)
    assert walk(client, "?path=/api/&sort=-duration", limit=1) == [slow.id, fast.id]


def test_an_unknown_sort_or_a_cursor_of_another_order_is_a_400_that_says_why(client, make_capture) -> None:
    make_capture()
    response = client.get("/inspect/captures.json?sort=colour")
    assert response.status_code == 400
    assert "use one of time, tunnel, method, path, status, duration, size" in response.json()["error"]
    by_id = make_capture().id
    response = client.get(f"/inspect/captures.json?sort=duration&before={by_id}")
    assert response.status_code == 400
    assert "another order" in response.json()["error"]


def test_the_page_says_its_sort_and_an_unknown_one_is_reported(client, make_capture) -> None:
    make_capture()
    page_html = client.get("/inspect/http?sort=-size").content.decode()
    assert '"sort": "-size"' in page_html
    reported = client.get("/inspect/http?sort=colour").content.decode()
    assert "sort &#x27;colour&#x27;" in reported or "sort 'colour'" in reported


def test_at_starts_the_list_at_the_newest_capture_of_that_time(client, make_capture) -> None:
    ids = CaptureIdFactory()
    base = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    made = []
    for offset_ms in (0, 400, 1_200, 2_500, 60_000):
        start = base + dt.timedelta(milliseconds=offset_ms)
        capture = make_capture(capture_id=ids.new(start.timestamp()))
        capture.start = start
        capture.save(update_fields=["start"])
        made.append(capture)
    at = (base + dt.timedelta(milliseconds=1_300)).timestamp()
    body = page(client, f"?at={at}&limit=2")
    assert [c["id"] for c in body["captures"]] == [made[2].id, made[1].id]
    # The next page goes on to older rows as usual.
    rest = page(client, f"?before={body['next_before']}")
    assert [c["id"] for c in rest["captures"]] == [made[0].id]
    # Within one second, milliseconds decide.
    assert page(client, f"?at={(base + dt.timedelta(milliseconds=300)).timestamp()}")["captures"][0]["id"] == made[0].id


@pytest.mark.parametrize(("query", "message"), [("?at=soon", "at: "), ("?at=1&sort=size", "newest-first")])
def test_a_bad_time_is_a_400(client, db, query, message) -> None:
    response = client.get("/inspect/captures.json" + query)
    assert response.status_code == 400
    assert message in response.json()["error"]
